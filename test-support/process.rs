//! Running a command from a test and asserting that it succeeded, for the tests of several
//! packages; each includes this file: `#[path = "../../test-support/process.rs"] mod process;`.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Asserts that `out` exited with success; the failure message is `context` followed by the
/// command's stderr.
pub fn assert_success(out: &Output, context: &str) {
    assert!(
        out.status.success(),
        "{context}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` to its end and asserts that it succeeded (see [`assert_success`]).
pub fn output_ok(cmd: &mut Command, context: &str) -> Output {
    let out = cmd.output().unwrap();
    assert_success(&out, context);
    out
}

/// Runs `cmd` to its end, asserts that it failed, and returns its stderr.
pub fn stderr_of_failure(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` with `stdin` piped in (from another thread, so that a large input cannot
/// deadlock against a full stdout pipe; a command that exits before reading it all is not an
/// error) and returns what it wrote.
pub fn output_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The command may exit before reading everything (on an error).
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}
