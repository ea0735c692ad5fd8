//! SIGHUP: the configuration file is read again. What can change while the server runs is
//! applied (today: `log_level`); every other setting that changed is logged as needing a
//! restart, and nothing of it is applied (the running configuration stays whole). A file that
//! does not load is refused with its error and changes nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The configuration file as last applied (its top-level keys and values).
pub struct Reloader {
    path: Option<PathBuf>,
    applied: toml::Table,
}

fn read_table(path: Option<&Path>) -> anyhow::Result<toml::Table> {
    match path {
        None => Ok(toml::Table::new()),
        Some(p) => Ok(std::fs::read_to_string(p)?.parse::<toml::Table>()?),
    }
}

/// The settings a reload applies.
const LIVE: &[&str] = &["log_level"];

impl Reloader {
    pub fn new(path: Option<PathBuf>) -> Self {
        let applied = read_table(path.as_deref()).unwrap_or_default();
        Self { path, applied }
    }

    /// Reads the file again and applies what can change; returns (applied, needs restart).
    pub fn reload(&mut self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        // the whole file must load as a configuration, else nothing changes
        let new = Config::load(self.path.as_deref())?;
        new.validate()?;
        let table = read_table(self.path.as_deref())?;
        let keys: BTreeSet<&String> = self.applied.keys().chain(table.keys()).collect();
        let (mut applied, mut restart) = (Vec::new(), Vec::new());
        for k in keys {
            if self.applied.get(k) == table.get(k) {
                continue;
            }
            if LIVE.contains(&k.as_str()) {
                applied.push(k.clone());
            } else {
                restart.push(k.clone());
            }
        }
        if applied.iter().any(|k| k == "log_level") {
            crate::logging::set_level(new.log_level.as_deref()).map_err(anyhow::Error::msg)?;
            // shows only when the new filter lets debug lines through
            tracing::debug!(log_level = ?new.log_level, "log filter replaced");
        }
        // what was applied is the new base; what needs a restart is reported again next time
        for k in &applied {
            match table.get(k) {
                Some(v) => self.applied.insert(k.clone(), v.clone()),
                None => self.applied.remove(k),
            };
        }
        Ok((applied, restart))
    }
}
