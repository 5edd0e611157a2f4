//! Images without a registry: a rootfs holding one host binary and the shared libraries `ldd`
//! lists for it (loader included), a world-writable `/tmp` and a minimal `/etc`, tarred in memory
//! and imported into the engine (`POST /images/create?fromSrc=-`) with the binary as entrypoint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::TryStreamExt;

use crate::docker::DockerBackend;
use crate::error::ProvisionError;

/// Where the binary goes inside the image.
pub const IMAGE_BIN_DIR: &str = "/usr/local/bin";

/// The absolute paths of the shared libraries `binary` loads (empty for a static binary).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {} failed: {}{}",
            binary.display(),
            text,
            stderr
        ));
    }
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        if line.contains("=> not found") {
            return Err(format!("a library is missing: {}", line.trim()));
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
        // or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        for word in line.split_whitespace() {
            if word.starts_with('/') {
                libs.insert(PathBuf::from(word));
            }
        }
    }
    Ok(libs.into_iter().collect())
}

/// What an image holds besides the minimal rootfs ([`rootfs_tar_of`]).
#[derive(Debug, Clone, Default)]
pub struct ImageContents {
    /// Programs (host path, path in the image); each brings the shared libraries `ldd` names,
    /// at the same paths.
    pub programs: Vec<(PathBuf, PathBuf)>,
    /// Files and directory trees copied as they are (host path, path in the image); symlinks
    /// are followed.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// Directories every user may write (1777), e.g. a data folder.
    pub writable_dirs: Vec<PathBuf>,
}

impl ImageContents {
    /// One program at `/usr/local/bin/<its file name>`.
    pub fn program(binary: &Path) -> Result<Self, String> {
        let file_name = binary
            .file_name()
            .ok_or_else(|| format!("{} has no file name", binary.display()))?;
        Ok(Self {
            programs: vec![(
                binary.to_path_buf(),
                Path::new(IMAGE_BIN_DIR).join(file_name),
            )],
            ..Self::default()
        })
    }
}

/// The rootfs tarball: `binary` at `/usr/local/bin/<file name>`, its libraries at the paths
/// `ldd` names (symlinks resolved to file contents), `/tmp` (1777), `/etc/passwd`,
/// `/etc/group`, `/etc/nsswitch.conf`, and empty `/proc`, `/sys`, `/dev`.
pub fn rootfs_tar(binary: &Path) -> Result<Vec<u8>, String> {
    rootfs_tar_of(&ImageContents::program(binary)?)
}

/// The rootfs tarball of `contents`, on the minimal rootfs of [`rootfs_tar`].
pub fn rootfs_tar_of(contents: &ImageContents) -> Result<Vec<u8>, String> {
    let mut fs = Rootfs::default();
    for dir in ["/tmp", "/etc", "/proc", "/sys", "/dev"] {
        let mode = if dir == "/tmp" { 0o1777 } else { 0o755 };
        fs.dir(Path::new(dir), mode)?;
    }
    // Before anything lands inside them, so they keep their mode.
    for dir in &contents.writable_dirs {
        fs.parents(dir)?;
        fs.dir(dir, 0o1777)?;
    }
    let etc: [(&str, &str); 3] = [
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("/etc/nsswitch.conf", "hosts: files dns\n"),
    ];
    for (path, content) in etc {
        fs.file(Path::new(path), content.as_bytes(), 0o644)?;
    }
    let mut libs = BTreeSet::new();
    for (host, target) in &contents.programs {
        let data = std::fs::read(host).map_err(|e| format!("reading {}: {e}", host.display()))?;
        fs.parents(target)?;
        fs.file(target, &data, 0o755)?;
        libs.extend(shared_libraries(host)?);
    }
    for lib in libs {
        let data = std::fs::read(&lib).map_err(|e| format!("reading {}: {e}", lib.display()))?;
        fs.parents(&lib)?;
        fs.file(&lib, &data, 0o755)?;
    }
    for (host, target) in &contents.files {
        fs.parents(target)?;
        fs.tree(host, target)?;
    }
    fs.tar
        .into_inner()
        .map_err(|e| format!("writing the tarball: {e}"))
}

/// A rootfs tarball being written: each path once (the engine refuses duplicates).
struct Rootfs {
    tar: tar::Builder<Vec<u8>>,
    written: BTreeSet<PathBuf>,
}

impl Default for Rootfs {
    fn default() -> Self {
        Self {
            tar: tar::Builder::new(Vec::new()),
            written: BTreeSet::new(),
        }
    }
}

impl Rootfs {
    fn dir(&mut self, path: &Path, mode: u32) -> Result<(), String> {
        if self.written.insert(path.to_path_buf()) {
            append_dir(&mut self.tar, path, mode)?;
        }
        Ok(())
    }

    /// The directories above `path`.
    fn parents(&mut self, path: &Path) -> Result<(), String> {
        let mut ancestors: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .filter(|p| *p != Path::new("/") && *p != Path::new(""))
            .map(Path::to_path_buf)
            .collect();
        ancestors.reverse();
        for dir in ancestors {
            self.dir(&dir, 0o755)?;
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
        if self.written.insert(path.to_path_buf()) {
            append_file(&mut self.tar, path, data, mode)?;
        }
        Ok(())
    }

    /// `host` (a file, or a directory and everything under it) at `target`; symlinks followed.
    fn tree(&mut self, host: &Path, target: &Path) -> Result<(), String> {
        let meta =
            std::fs::metadata(host).map_err(|e| format!("reading {}: {e}", host.display()))?;
        if meta.is_dir() {
            self.dir(target, 0o755)?;
            let mut entries: Vec<_> = std::fs::read_dir(host)
                .map_err(|e| format!("reading {}: {e}", host.display()))?
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect();
            entries.sort();
            for name in entries {
                self.tree(&host.join(&name), &target.join(&name))?;
            }
            return Ok(());
        }
        let data = std::fs::read(host).map_err(|e| format!("reading {}: {e}", host.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        self.file(target, &data, mode)
    }
}

fn tar_path(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &Path, mode: u32) -> Result<(), String> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, tar_path(path), std::io::empty())
        .map_err(|e| format!("adding {}: {e}", path.display()))
}

fn append_file(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &Path,
    data: &[u8],
    mode: u32,
) -> Result<(), String> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_mtime(0);
    tar.append_data(&mut header, tar_path(path), data)
        .map_err(|e| format!("adding {}: {e}", path.display()))
}

/// `repo:tag` (tag defaults to `latest`; a `:` in a registry host is not a tag).
fn split_ref(image_ref: &str) -> (&str, &str) {
    match image_ref.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() => (repo, tag),
        _ => (image_ref, "latest"),
    }
}

/// Imports a single-binary image of `binary_path` as `image_ref` (entrypoint: the binary);
/// returns the image id. About 1 s for a 76 MB debug build.
pub async fn build_image_from_binary(
    docker: &DockerBackend,
    binary_path: &Path,
    image_ref: &str,
) -> Result<String, ProvisionError> {
    let build_err = |message: String| ProvisionError::ImageBuild {
        image: image_ref.to_string(),
        message,
    };
    let contents = ImageContents::program(binary_path).map_err(build_err)?;
    let entrypoint = vec![contents.programs[0].1.display().to_string()];
    build_image(docker, contents, image_ref, &entrypoint, &[]).await
}

/// Imports an image of `contents` as `image_ref` with `entrypoint` and `env` (`NAME=value`,
/// after a default `PATH`); returns the image id.
pub async fn build_image(
    docker: &DockerBackend,
    contents: ImageContents,
    image_ref: &str,
    entrypoint: &[String],
    env: &[String],
) -> Result<String, ProvisionError> {
    let build_err = |message: String| ProvisionError::ImageBuild {
        image: image_ref.to_string(),
        message,
    };
    let tarball = tokio::task::spawn_blocking(move || rootfs_tar_of(&contents))
        .await
        .map_err(|e| build_err(e.to_string()))?
        .map_err(build_err)?;
    let client = docker.client().await?;
    let (repo, tag) = split_ref(image_ref);
    let entrypoint = serde_json::to_string(entrypoint).map_err(|e| build_err(e.to_string()))?;
    let mut changes = vec![
        format!("ENTRYPOINT {entrypoint}"),
        "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
    ];
    changes.extend(env.iter().map(|e| format!("ENV {e}")));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(changes)
        .build();
    client
        .create_image(
            Some(options),
            Some(bollard::body_full(bytes::Bytes::from(tarball))),
            None,
        )
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| match e {
            bollard::errors::Error::DockerStreamError { error } => build_err(error),
            other => docker.error("import image", image_ref, other),
        })?;
    let image = client
        .inspect_image(image_ref)
        .await
        .map_err(|e| docker.error("inspect image", image_ref, e))?;
    image
        .id
        .ok_or_else(|| build_err("the engine reported no image id".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_into_repo_and_tag() {
        assert_eq!(split_ref("avb-demo-mcp:test"), ("avb-demo-mcp", "test"));
        assert_eq!(split_ref("avb-demo-mcp"), ("avb-demo-mcp", "latest"));
        assert_eq!(
            split_ref("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
        assert_eq!(split_ref("localhost:5000/x:1"), ("localhost:5000/x", "1"));
    }

    #[test]
    fn rootfs_of_a_host_binary_has_its_loader_and_libc() {
        let ls = Path::new("/bin/ls");
        let libs = shared_libraries(ls).expect("ldd");
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libs:?}"
        );
        let tarball = rootfs_tar(ls).expect("tar");
        let mut archive = tar::Archive::new(tarball.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for want in [
            "usr/local/bin/ls",
            "tmp",
            "etc/passwd",
            "lib64/ld-linux-x86-64.so.2",
        ] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == want),
                "{want} in {names:?}"
            );
        }
    }
}
