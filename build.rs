//! Records the git commit the binary is built from (`dwcp-anomaly --version` prints it):
//! `DWCP_GIT_COMMIT` is the short hash of `HEAD` (or the `DWCP_GIT_COMMIT` the build was
//! given, as the Dockerfile does), else `unknown` (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // A build without .git (the container image) may pass the commit in.
    println!("cargo:rerun-if-env-changed=DWCP_GIT_COMMIT");
    let given = std::env::var("DWCP_GIT_COMMIT").ok().filter(|c| !c.is_empty());
    let commit = given.or_else(|| git(&["rev-parse", "--short=12", "HEAD"]).filter(|h| !h.is_empty()));
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DWCP_GIT_COMMIT={commit}");
    // A new commit moves HEAD or the branch it names.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        // The branch's own ref file, or packed-refs once `git gc` packed it (a path that does
        // not exist would rerun this script on every build).
        let branch = git(&["symbolic-ref", "-q", "HEAD"]).map(|h| format!("{dir}/{h}"));
        match branch.filter(|b| std::path::Path::new(b).exists()) {
            Some(b) => println!("cargo:rerun-if-changed={b}"),
            None if std::path::Path::new(&format!("{dir}/packed-refs")).exists() => {
                println!("cargo:rerun-if-changed={dir}/packed-refs")
            }
            None => {}
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
