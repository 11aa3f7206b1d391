// Forwards routine registration to the Rust static library, so the linker
// keeps it (rextendr template).
void R_init_securer_extendr(void *dll);

void R_init_securer(void *dll) {
  R_init_securer_extendr(dll);
}
