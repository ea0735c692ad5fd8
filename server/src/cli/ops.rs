//! Day-two commands: `zone export` (from the running server's API), `backup` (a consistent
//! copy of the data directory while the server runs) and `restore`.
//!
//! A backup is a directory (mode 0700, every file 0600): `mxdns.sqlite3`, copied with SQLite's
//! online backup in one step (one read transaction: consistent, while the server writes), then
//! every other file of the data directory (`keys/`, `tsig/`, `admin-token`, ...) but the
//! checkpoint (a cache that a start rebuilds) and the database's `-wal`/`-shm`. Key files are
//! written before their rows, so every key the copied database names has its file (a key whose
//! file is purged between the two copies was removed from the zones long before).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::Config;
use crate::zonemgr;

/// Files of the data directory that are not copied: the database (copied with the online
/// backup) and its journals, and the checkpoint (a cache).
fn skipped(name: &str) -> bool {
    name.starts_with("mxdns.sqlite3") || name.starts_with("zones.checkpoint")
}

/// `mxdns zone export ZONE`: the signed zone as the running server serves it (`GET
/// /v1/zones/{zone}/export` with the admin token: `MXDNS_TOKEN` or `<data-dir>/admin-token`).
pub fn zone_export(
    config: &Config,
    zone: &str,
    api: Option<std::net::SocketAddr>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let zone = super::parse_name(zone)?;
    let token = match std::env::var("MXDNS_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => std::fs::read_to_string(config.data_dir.join("admin-token"))
            .context("no MXDNS_TOKEN and no <data-dir>/admin-token to read")?
            .trim()
            .to_string(),
    };
    let addr = api.unwrap_or(config.api_listen);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{addr}/v1/zones/{}/export", zone.to_ascii());
    let resp = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| format!("asking the server at {addr} (is it running?)"))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body().into_reader();
    if status != 200 {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut body, &mut text);
        bail!("the server answered {status}: {text}");
    }
    match output {
        Some(p) => {
            let tmp = p.with_extension("part");
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            std::io::copy(&mut body, &mut f)?;
            f.sync_all()?;
            std::fs::rename(&tmp, p)?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            std::io::copy(&mut body, &mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn private_dir(p: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Copies `from` to `to` (which must not exist) with mode 0600, fsynced.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut dst = opts
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    let mut src =
        std::fs::File::open(from).with_context(|| format!("reading {}", from.display()))?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    Ok(())
}

/// Every file under `from` (recursively, skipping what `skip` says at the top level) copied to
/// `to`; returns how many.
fn copy_tree(from: &Path, to: &Path, top: bool) -> anyhow::Result<usize> {
    private_dir(to)?;
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name_s = name.to_string_lossy();
        if top && skipped(&name_s) {
            continue;
        }
        let ty = e.file_type()?;
        if ty.is_dir() {
            n += copy_tree(&e.path(), &to.join(&name), false)?;
        } else if ty.is_file() {
            copy_private(&e.path(), &to.join(&name))?;
            n += 1;
        }
    }
    Ok(n)
}

/// `mxdns backup DEST`: DEST must not exist; the server may run.
pub fn backup(config: &Config, dest: &Path) -> anyhow::Result<()> {
    if dest.exists() {
        bail!("{} exists already: choose a new directory", dest.display());
    }
    let db = zonemgr::db_path(&config.data_dir);
    if !db.exists() {
        bail!("no database at {}", db.display());
    }
    private_dir(dest)?;
    let store = provisioner::Store::open(&db)?;
    store
        .backup_to(&zonemgr::db_path(dest))
        .context("copying the database")?;
    drop(store);
    // the key files after the database: every key row copied has its file
    let files = copy_tree(&config.data_dir, dest, true)?;
    let manifest = serde_json::json!({
        "mxdns": env!("CARGO_PKG_VERSION"),
        "made": crate::lifecycle::utc(u64::from(zonemgr::Clock::now(&zonemgr::SystemClock))),
        "from": config.data_dir,
        "files": files + 1,
    });
    std::fs::write(dest.join("BACKUP.json"), format!("{manifest:#}\n"))?;
    println!("{manifest}");
    Ok(())
}

/// `mxdns restore SRC`: into the data directory, with the server stopped. Refuses a data
/// directory that holds a database unless `force` (which replaces it).
pub fn restore(config: &Config, src: &Path, force: bool) -> anyhow::Result<()> {
    let src_db = zonemgr::db_path(src);
    if !src_db.exists() || !src.join("BACKUP.json").exists() {
        bail!("{} is not a backup made by `mxdns backup`", src.display());
    }
    let dir: PathBuf = config.data_dir.clone();
    let db = zonemgr::db_path(&dir);
    if db.exists() && !force {
        bail!(
            "{} holds a database: stop the server and pass --force to replace it",
            dir.display()
        );
    }
    private_dir(&dir)?;
    // what the replaced data directory had: the database, its journals, the checkpoint, the
    // key and TSIG directories and the admin token
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let p = e.path();
        if skipped(&name) || name == "admin-token" {
            std::fs::remove_file(&p)?;
        } else if e.file_type()?.is_dir() && (name == "keys" || name == "tsig") {
            std::fs::remove_dir_all(&p)?;
        }
    }
    copy_private(&src_db, &db)?;
    let mut n = 1;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if skipped(&name) || name == "BACKUP.json" {
            continue;
        }
        if e.file_type()?.is_dir() {
            n += copy_tree(&e.path(), &dir.join(&name), false)?;
        } else {
            let to = dir.join(&name);
            if to.exists() {
                std::fs::remove_file(&to)?;
            }
            copy_private(&e.path(), &to)?;
            n += 1;
        }
    }
    // the copy opens as a store (schema checked, migrations run)
    provisioner::Store::open(&db).context("opening the restored database")?;
    println!(
        "{}",
        serde_json::json!({"restored": src, "into": dir, "files": n})
    );
    Ok(())
}
