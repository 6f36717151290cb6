//! The test image: `busybox:latest` (`Cmd ["sh"]`) built from the host's static busybox, as a
//! docker-save tarball that engines load without any registry.
//!
//! The tarball is deterministic: fixed timestamps, owners and entry order, so the same busybox
//! gives the same bytes and the same image ID on every engine and every run. Tests can therefore
//! compare image IDs across engines and runs. This module builds and loads; it starts nothing.

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ring::digest::{digest, SHA256};
use tar::{Builder, EntryType, Header};

use super::{host, http, SupportError};

/// The image every engine gets unless told otherwise.
pub const BUSYBOX_REFERENCE: &str = "busybox:latest";

/// Every timestamp in the image: 2020-01-01T00:00:00Z.
const EPOCH: u64 = 1_577_836_800;
const CREATED: &str = "2020-01-01T00:00:00Z";

/// A docker-save tarball and what identifies it.
pub struct TestImage {
    /// Repository and tag it loads as, e.g. `busybox:latest`.
    pub reference: String,
    /// Image ID engines report: `sha256:` and the digest of its config.
    pub id: String,
    /// The digest of its only layer (its `diff_id`).
    pub layer_digest: String,
    /// The tarball, in `docker save` format (`manifest.json`, config, layer).
    pub tarball: Vec<u8>,
}

impl TestImage {
    /// Writes the tarball to `path`, e.g. for `docker load -i`.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.tarball)
    }

    /// Loads the image into the engine at `addr` (`POST /images/load`) and checks that the engine
    /// then reports it under [`TestImage::reference`] with [`TestImage::id`].
    pub fn load_into(&self, addr: &str) -> Result<(), SupportError> {
        let response = http::request(
            addr,
            "POST",
            "/images/load?quiet=1",
            Some(("application/x-tar", &self.tarball)),
            Duration::from_secs(60),
        )
        .map_err(|e| SupportError::new(format!("loading {} into {addr}: {e}", self.reference)))?;
        let text = response.text();
        // The engine answers 200 and reports load errors inside the JSON message stream.
        if response.status != 200 || text.contains("\"error") {
            return Err(SupportError::new(format!(
                "loading {} into {addr}: HTTP {}: {text}",
                self.reference, response.status
            )));
        }
        let inspect =
            http::get(addr, &format!("/images/{}/json", self.reference)).map_err(|e| {
                SupportError::new(format!("inspecting {} on {addr}: {e}", self.reference))
            })?;
        let id = inspect
            .json()
            .ok()
            .and_then(|v| v["Id"].as_str().map(str::to_string));
        if id.as_deref() != Some(self.id.as_str()) {
            return Err(SupportError::new(format!(
                "after loading {} into {addr}, the engine reports image id {id:?}, not {}",
                self.reference, self.id
            )));
        }
        Ok(())
    }
}

/// The `busybox:latest` test image, built once per process from `/bin/busybox`.
///
/// Panics with the reason if it cannot be built (see [`build_busybox_image`]).
pub fn busybox_image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let busybox = &host::tools().busybox;
        build_busybox_image(busybox, BUSYBOX_REFERENCE, &["sh"]).unwrap_or_else(|e| {
            panic!(
                "cannot build the test image from {}: {e}",
                busybox.display()
            )
        })
    })
}

/// Builds a docker-save tarball of a one-layer image whose root file system is the static
/// `busybox` binary with its applets linked in `/bin`, a minimal `/etc`, and the usual empty
/// directories, tagged `reference` and running `cmd` by default.
pub fn build_busybox_image(busybox: &Path, reference: &str, cmd: &[&str]) -> io::Result<TestImage> {
    let layer = root_fs_layer(busybox)?;
    let layer_hex = sha256_hex(&layer);
    let config = format!(
        concat!(
            r#"{{"architecture":"{arch}","os":"linux","created":"{created}","#,
            r#""config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":{cmd}}},"#,
            r#""rootfs":{{"type":"layers","diff_ids":["sha256:{layer}"]}},"#,
            r#""history":[{{"created":"{created}","created_by":"shoal test support: static busybox root file system"}}]}}"#
        ),
        arch = go_architecture(),
        created = CREATED,
        cmd = serde_json::to_string(cmd).map_err(io::Error::other)?,
        layer = layer_hex,
    );
    let config_hex = sha256_hex(config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":[{}],"Layers":["{layer_hex}/layer.tar"]}}]"#,
        serde_json::to_string(reference).map_err(io::Error::other)?
    );
    let mut archive = Archive::new();
    archive.file(&format!("{config_hex}.json"), config.as_bytes(), 0o644)?;
    archive.directory(&format!("{layer_hex}/"), 0o755)?;
    archive.file(&format!("{layer_hex}/layer.tar"), &layer, 0o644)?;
    archive.file("manifest.json", manifest.as_bytes(), 0o644)?;
    Ok(TestImage {
        reference: reference.to_string(),
        id: format!("sha256:{config_hex}"),
        layer_digest: format!("sha256:{layer_hex}"),
        tarball: archive.finish()?,
    })
}

/// The single layer: a tar of the root file system, entries sorted by path.
fn root_fs_layer(busybox: &Path) -> io::Result<Vec<u8>> {
    let binary = std::fs::read(busybox)?;
    let listing = Command::new(busybox).arg("--list").output()?;
    if !listing.status.success() {
        return Err(io::Error::other(format!(
            "`{} --list` failed: {}",
            busybox.display(),
            String::from_utf8_lossy(&listing.stderr)
        )));
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();

    enum Node<'a> {
        Directory(u32),
        File(&'a [u8], u32),
        Link(&'a str),
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n";
    let group = b"root:x:0:\nnogroup:x:65534:\n";
    let mut nodes: Vec<(String, Node)> = vec![
        ("bin/".into(), Node::Directory(0o755)),
        ("bin/busybox".into(), Node::File(&binary, 0o755)),
        ("dev/".into(), Node::Directory(0o755)),
        ("etc/".into(), Node::Directory(0o755)),
        ("etc/group".into(), Node::File(group, 0o644)),
        ("etc/passwd".into(), Node::File(passwd, 0o644)),
        ("home/".into(), Node::Directory(0o755)),
        ("proc/".into(), Node::Directory(0o555)),
        ("root/".into(), Node::Directory(0o700)),
        ("sys/".into(), Node::Directory(0o555)),
        ("tmp/".into(), Node::Directory(0o1777)),
        ("usr/".into(), Node::Directory(0o755)),
        ("var/".into(), Node::Directory(0o755)),
    ];
    nodes.extend(
        applets
            .iter()
            .map(|name| (format!("bin/{name}"), Node::Link("busybox"))),
    );
    nodes.sort_by(|a, b| a.0.cmp(&b.0));

    let mut archive = Archive::new();
    for (path, node) in &nodes {
        match node {
            Node::Directory(mode) => archive.directory(path, *mode)?,
            Node::File(data, mode) => archive.file(path, data, *mode)?,
            Node::Link(target) => archive.symlink(path, target)?,
        }
    }
    archive.finish()
}

/// A tar archive in memory whose headers carry nothing from the build machine.
struct Archive(Builder<Vec<u8>>);

impl Archive {
    fn new() -> Self {
        Archive(Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(EPOCH);
        header.set_size(size);
        header
    }

    fn directory(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let mut header = Self::header(EntryType::Directory, mode, 0);
        self.0.append_data(&mut header, path, io::empty())
    }

    fn file(&mut self, path: &str, data: &[u8], mode: u32) -> io::Result<()> {
        let mut header = Self::header(EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut header, path, data)
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let mut header = Self::header(EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut header, path, target)
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        self.0.into_inner()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The architecture name Docker uses (Go's `GOARCH`) for the machine running the tests.
fn go_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
