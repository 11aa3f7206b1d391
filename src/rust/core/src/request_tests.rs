use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

// serialize(list(code = <code>, plots = list(width = 504, height = 504,
// res = 72, max_plots = 10L, max_bytes = 5e6), console = 65536), NULL,
// xdr = FALSE), made by R 4.2.2 for "", "ab" and "\u00e9 <- 1".
const HEAD: &str =
    "420a030000000202040000050300050000005554462d381302000003000000100000000100000009";
const TAIL: &str = "13020000050000000e000000010000000000000000807f400e000000010000000000000000807f400e0000000100000000000000000052400d000000010000000a0000000e0000000100000000000000d0125341020400000100000009000400050000006e616d65731000000005000000090004000500000077696474680900040006000000686569676874090004000300000072657309000400090000006d61785f706c6f747309000400090000006d61785f6279746573fe0000000e00000001000000000000000000f04002040000ff01000010000000030000000900040004000000636f64650900040005000000706c6f74730900040007000000636f6e736f6c65fe000000";

fn r_made(charsxp: &str) -> Vec<u8> {
    hex(&format!("{HEAD}{charsxp}{TAIL}"))
}

#[test]
fn the_spliced_request_is_the_one_r_serializes() {
    let template = r_made("00040000000000");
    assert_eq!(exec_payload(&template, "").unwrap(), template);
    assert_eq!(
        exec_payload(&template, "ab").unwrap(),
        r_made("0004000200000061 62".replace(' ', "").as_str())
    );
    assert_eq!(
        exec_payload(&template, "\u{e9} <- 1").unwrap(),
        r_made("80000007000000c3a9203c2d2031")
    );
}

#[test]
fn a_template_of_another_shape_is_refused() {
    let template = r_made("00040000000000");
    // Its string is not "".
    let x = r_made("0004000100000078");
    assert_eq!(exec_payload(&x, "1"), Err(SpliceError::Template));
    // XDR (big-endian) format, version 2, cut short, empty.
    let xdr = hex("580a000000030004020200030500000000055554462d38000002130000000300000010000000010004000900000000000000fe");
    assert_eq!(exec_payload(&xdr, "1"), Err(SpliceError::Template));
    let mut v2 = template.clone();
    v2[2] = 2;
    assert_eq!(exec_payload(&v2, "1"), Err(SpliceError::Template));
    for cut in [0, 2, 20, 40, 44] {
        assert_eq!(
            exec_payload(&template[..cut], "1"),
            Err(SpliceError::Template)
        );
    }
    // A character vector of two strings first.
    let mut two = template.clone();
    two[35] = 2;
    assert_eq!(exec_payload(&two, "1"), Err(SpliceError::Template));
}
