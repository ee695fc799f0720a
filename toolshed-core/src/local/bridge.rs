//! Finding the static stdio bridge at run time: the setting, next to the running executable, or
//! on `PATH` — never a path of the build tree.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// File name of the bridge binary (the `mcp-stdio-bridge` package).
pub const STDIO_BRIDGE_BINARY: &str = "mcp-stdio-bridge";

/// Where the bridge was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeFoundBy {
    /// The `TOOLSHED_STDIO_BRIDGE` setting.
    Setting,
    /// Next to the running executable (installed together with `cargo install`).
    NextToExecutable,
    /// A directory of `PATH`.
    Path,
}

impl fmt::Display for BridgeFoundBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BridgeFoundBy::Setting => "the TOOLSHED_STDIO_BRIDGE setting",
            BridgeFoundBy::NextToExecutable => "next to the executable",
            BridgeFoundBy::Path => "PATH",
        })
    }
}

/// Whether stdio servers can be verified, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioBridgeStatus {
    /// The bridge binary, when found.
    pub path: Option<PathBuf>,
    /// How it was found.
    pub found_by: Option<BridgeFoundBy>,
    /// `Some(false)` when the binary is dynamically linked (it then runs only in images with a
    /// compatible C library); `None` when unknown or not found.
    pub statically_linked: Option<bool>,
    /// Why stdio servers cannot be verified (or a warning about the binary found), for
    /// `/healthz` and `toolshed doctor`.
    pub problem: Option<String>,
}

impl StdioBridgeStatus {
    /// Whether stdio servers can be verified.
    pub fn available(&self) -> bool {
        self.path.is_some()
    }
}

const HOW_TO_BUILD: &str =
    "build it with `RUSTFLAGS=\"-C target-feature=+crt-static\" cargo install \
     --path examples/mcp-stdio-bridge --target x86_64-unknown-linux-gnu` and put it next to this \
     program, on PATH, or in TOOLSHED_STDIO_BRIDGE";

/// Looks for the bridge: `setting` when given (no fallback: an explicit setting that points
/// nowhere is reported, not silently replaced), else next to the running executable, else on
/// `PATH`.
pub fn locate_stdio_bridge(setting: Option<&Path>) -> StdioBridgeStatus {
    let found = |path: PathBuf, by| {
        let statically_linked = is_statically_linked(&path);
        let problem = (statically_linked == Some(false)).then(|| {
            format!(
                "the stdio bridge at {} is dynamically linked: it runs only in images with a \
                 compatible C library; {HOW_TO_BUILD}",
                path.display()
            )
        });
        StdioBridgeStatus {
            path: Some(path),
            found_by: Some(by),
            statically_linked,
            problem,
        }
    };
    let missing = |problem: String| StdioBridgeStatus {
        path: None,
        found_by: None,
        statically_linked: None,
        problem: Some(problem),
    };
    if let Some(path) = setting {
        return if is_executable_file(path) {
            found(path.to_path_buf(), BridgeFoundBy::Setting)
        } else {
            missing(format!(
                "TOOLSHED_STDIO_BRIDGE={} is not an executable file, so stdio servers cannot be \
                 verified",
                path.display()
            ))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(STDIO_BRIDGE_BINARY)));
    if let Some(path) = beside.filter(|p| is_executable_file(p)) {
        return found(path, BridgeFoundBy::NextToExecutable);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(STDIO_BRIDGE_BINARY))
            .find(|p| is_executable_file(p))
    });
    match on_path {
        Some(path) => found(path, BridgeFoundBy::Path),
        None => missing(format!(
            "no {STDIO_BRIDGE_BINARY} next to this program nor on PATH, so stdio servers cannot \
             be verified; {HOW_TO_BUILD}"
        )),
    }
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether an ELF executable has no program interpreter (`PT_INTERP`), i.e. is statically
/// linked. `None` when the file is not a 64-bit little-endian ELF or cannot be read.
fn is_statically_linked(path: &Path) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let mut file = std::fs::File::open(path).ok()?;
    let mut header = [0u8; 64];
    file.read_exact(&mut header).ok()?;
    // ELF magic, 64-bit class, little-endian.
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let phoff = u64::from_le_bytes(header[32..40].try_into().ok()?);
    let phentsize = usize::from(u16_at(&header, 54));
    let phnum = usize::from(u16_at(&header, 56));
    if phentsize < 4 || phnum > 4096 {
        return None;
    }
    let mut table = vec![0u8; phentsize * phnum];
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(phoff)).ok()?;
    file.read_exact(&mut table).ok()?;
    let has_interp = table
        .chunks_exact(phentsize)
        .any(|entry| u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) == PT_INTERP);
    Some(!has_interp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_setting_that_points_nowhere_is_reported_not_replaced() {
        let status = locate_stdio_bridge(Some(Path::new("/nonexistent/mcp-stdio-bridge")));
        assert!(!status.available());
        let problem = status.problem.unwrap();
        assert!(problem.contains("TOOLSHED_STDIO_BRIDGE"), "{problem}");
    }

    #[test]
    fn a_dynamically_linked_binary_is_found_with_a_warning() {
        // The test binary itself is dynamically linked (the default for the gnu target).
        let exe = std::env::current_exe().unwrap();
        let status = locate_stdio_bridge(Some(&exe));
        assert_eq!(status.path.as_deref(), Some(exe.as_path()));
        assert_eq!(status.found_by, Some(BridgeFoundBy::Setting));
        assert_eq!(status.statically_linked, Some(false));
        assert!(status.problem.unwrap().contains("dynamically linked"));
    }

    #[test]
    fn a_non_elf_file_has_unknown_linkage() {
        assert_eq!(is_statically_linked(Path::new("/etc/hostname")), None);
    }
}
