//! Caps glibc's malloc arenas in the processes that run the speech engine.
//!
//! Why: ONNX Runtime gives each inference's memory back to the C allocator, and glibc keeps up
//! to eight arenas per core, one per thread that allocates, each holding on to what was freed
//! in it. With two model sessions and their threads the process peaked 60–90 MB higher than
//! with two arenas, at the same speed (BENCHMARKS.md). glibc reads the cap only from its
//! environment at start-up (`MALLOC_ARENA_MAX`; calling `mallopt` would need unsafe code, which
//! this workspace forbids), so such a process re-executes itself once, same pid and arguments,
//! with the variable set. A `MALLOC_ARENA_MAX` already in the environment is kept as it is:
//! that is how an operator chooses another cap.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// glibc's variable.
pub const VARIABLE: &str = "MALLOC_ARENA_MAX";
/// The cap, unless the environment has one.
pub const DEFAULT_CAP: &str = "2";

/// Re-executes this process with the cap when its environment has none; returns (and the
/// process runs on with glibc's default) when it has one, off glibc, or if that fails, which it
/// says on stderr.
pub fn cap_by_re_executing() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let current = std::env::var_os(VARIABLE);
        let Some(mut command) = re_execution(&exe, std::env::args_os(), current) else {
            return;
        };
        // `exec` returns only when it failed.
        let error = command.exec();
        eprintln!(
            "note: cannot re-execute {} with {VARIABLE}={DEFAULT_CAP} ({error}); running with \
             glibc's default malloc arenas (more memory)",
            exe.display()
        );
    }
}

/// The command that runs `exe` again with `args` (the first is `argv[0]`) and the cap, or `None`
/// when `current` (the environment's `MALLOC_ARENA_MAX`) is already set.
fn re_execution(
    exe: &Path,
    mut args: impl Iterator<Item = OsString>,
    current: Option<OsString>,
) -> Option<Command> {
    if current.is_some() {
        return None;
    }
    let mut command = Command::new(exe);
    #[cfg(unix)]
    if let Some(arg0) = args.next() {
        use std::os::unix::process::CommandExt;
        command.arg0(arg0);
    }
    command.args(args).env(VARIABLE, DEFAULT_CAP);
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> impl Iterator<Item = OsString> + use<> {
        args.iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn without_a_cap_the_process_runs_again_with_its_arguments_and_the_cap() {
        // `sh -c 'echo …' argv0 x` prints its arguments and the variable, as the re-executed
        // `avb` would see them.
        let script = r#"echo "$0|$1|$MALLOC_ARENA_MAX""#;
        let args = strings(&["avb-as-sh", "-c", script, "avb", "x"]);
        let mut command = re_execution(Path::new("/bin/sh"), args, None).expect("re-executes");
        let out = command.output().expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "avb|x|2");
    }

    #[test]
    fn a_cap_in_the_environment_is_kept() {
        let args = strings(&["avb", "dev"]);
        assert!(re_execution(Path::new("/bin/sh"), args, Some("4".into())).is_none());
    }
}
