//! securer-launcher: `securer-launcher --parent PID --spec JSON`.
//!
//! Started by the host with the IPC socket inherited; applies the spec's
//! sandbox, limits and environment, reports on the socket, and execs R.
//! Single-threaded on purpose: user namespaces and safe forking need it.

use securer_core::policy::{LaunchFailure, LaunchSpec, Layer};
use securer_core::{launch, report};

const USAGE: &str = "usage: securer-launcher [--parent PID] --spec JSON";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec_json = None;
    let mut parent = 0i32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--spec" => spec_json = it.next().cloned(),
            "--parent" => parent = it.next().and_then(|p| p.parse().ok()).unwrap_or(-1),
            _ => {
                eprintln!("securer-launcher: unexpected argument {a:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let Some(json) = spec_json else {
        eprintln!("securer-launcher: --spec is required\n{USAGE}");
        std::process::exit(2);
    };
    let spec: LaunchSpec = match serde_json::from_str(&json) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("securer-launcher: invalid --spec: {e}");
            std::process::exit(2);
        }
    };
    if parent < 0 {
        report::fail(
            spec.ipc_fd,
            LaunchFailure::new(Layer::Launcher, "--parent must be a process id", None),
        );
    }
    launch::die_with_parent(spec.ipc_fd, parent);
    launch::run(spec)
}
