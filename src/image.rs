//! `avb image build`: the `avb` container image, made without a registry or a Dockerfile from
//! this very binary and the shared libraries it loads, espeak-ng (program, libraries and
//! data, for words the English lexicon lacks), the CA bundle, and optionally the Kokoro assets,
//! imported into the Docker engine (`AVB_DOCKER_HOST`, else `DOCKER_HOST`, else the local
//! socket). The image runs as any user: `/var/lib/avb` (its `AVB_DATA_DIR`) and `/tmp` are
//! writable by all.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use avb_config::AvbConfig;
use avb_provisioning::{DockerBackend, DockerEndpoint, ImageContents, build_image};

/// The image's data folder (`AVB_DATA_DIR`): baked assets live under it.
const IMAGE_DATA_DIR: &str = "/var/lib/avb";
/// Debian's bundle of the platform's roots.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// Build the `avb` image from this binary (entrypoint `avb`; run `avb serve`, `avb worker`…).
    Build {
        /// Image name and tag (default `avb:<version>`).
        #[arg(long)]
        tag: Option<String>,
        /// Bake the Kokoro assets of `$AVB_DATA_DIR/assets` into the image (what TTS workers
        /// need; without them, mount them at /var/lib/avb/assets).
        #[arg(long)]
        with_assets: bool,
    },
}

pub async fn run(args: ImageArgs) -> anyhow::Result<()> {
    match args.command {
        ImageCommand::Build { tag, with_assets } => build(tag, with_assets).await,
    }
}

async fn build(tag: Option<String>, with_assets: bool) -> anyhow::Result<()> {
    let config = AvbConfig::load()?;
    let tag = tag.unwrap_or_else(|| format!("avb:{}", env!("CARGO_PKG_VERSION")));
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut contents = ImageContents::program(&exe).map_err(anyhow::Error::msg)?;
    contents.programs[0].1 = PathBuf::from("/usr/local/bin/avb");
    let mut parts = vec![format!("avb ({})", exe.display())];

    let espeak = which(&config.tts.espeak_program).with_context(|| {
        format!(
            "{} not found (Debian package espeak-ng; AVB_ESPEAK_PROGRAM): the image's TTS needs it",
            config.tts.espeak_program
        )
    })?;
    let espeak_data = espeak_data_dir(&espeak)?;
    contents
        .programs
        .push((espeak.clone(), PathBuf::from("/usr/bin/espeak-ng")));
    contents
        .files
        .push((espeak_data.clone(), espeak_data.clone()));
    parts.push(format!("espeak-ng and {}", espeak_data.display()));

    if Path::new(CA_BUNDLE).exists() {
        contents
            .files
            .push((PathBuf::from(CA_BUNDLE), PathBuf::from(CA_BUNDLE)));
        parts.push(CA_BUNDLE.to_string());
    }
    if with_assets {
        let assets = config.assets_dir();
        anyhow::ensure!(
            assets.join("kokoro-v1.0.int8.onnx").exists(),
            "no Kokoro assets in {} (python3 deploy/fetch_assets.py)",
            assets.display()
        );
        contents
            .files
            .push((assets.clone(), Path::new(IMAGE_DATA_DIR).join("assets")));
        parts.push(format!("the assets of {}", assets.display()));
    }
    contents.writable_dirs.push(PathBuf::from(IMAGE_DATA_DIR));

    let endpoint = match &config.provisioning.docker_host {
        Some(host) => DockerEndpoint::parse(host),
        None => DockerEndpoint::from_env(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let docker = DockerBackend::new(endpoint);
    let env = [
        format!("AVB_DATA_DIR={IMAGE_DATA_DIR}"),
        // In a container the api must listen beyond loopback to be reached at all.
        "AVB_HTTP=0.0.0.0:8080".to_string(),
    ];
    let id = build_image(
        &docker,
        contents,
        &tag,
        &["/usr/local/bin/avb".to_string()],
        &env,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("built {tag} ({id})");
    println!("  with {}", parts.join(", "));
    println!("  run: docker run --rm {tag} --version");
    Ok(())
}

/// `program` as a path: itself when it names one, else found on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.exists().then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Where `espeak` reads its data (`--version` says: "Data at: DIR").
fn espeak_data_dir(espeak: &Path) -> anyhow::Result<PathBuf> {
    let out = std::process::Command::new(espeak)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", espeak.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = text
        .split("Data at:")
        .nth(1)
        .map(|rest| PathBuf::from(rest.trim()))
        .with_context(|| {
            format!(
                "{} --version did not say where its data is",
                espeak.display()
            )
        })?;
    anyhow::ensure!(dir.is_dir(), "espeak-ng data {} is missing", dir.display());
    Ok(dir)
}
