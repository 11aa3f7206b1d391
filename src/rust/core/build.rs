//! Defines `cfg(native_linux)`: the Linux sandbox, the warm zygote and the
//! pidfd-based process handling. Set on Linux unless the `portable` feature
//! asks for the code path of other Unix systems (macOS), so that it builds,
//! passes clippy and runs its tests here too (see `launch::portable`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(native_linux)");
    println!("cargo::rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE").is_some();
    if linux && !portable {
        println!("cargo::rustc-cfg=native_linux");
    }
}
