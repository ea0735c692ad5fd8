//! Logs: text (default) or JSON lines (`log_format = "json"`) on standard error, with a level
//! filter that SIGHUP can change (`log_level` of the configuration; `MXDNS_LOG` wins over it).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

const DEFAULT: &str = "info,hickory_server=warn";

static HANDLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The filter: `MXDNS_LOG` if set (and not empty), else the configured level, else the default.
fn filter(level: Option<&str>) -> EnvFilter {
    if let Ok(v) = std::env::var("MXDNS_LOG") {
        if let Ok(f) = EnvFilter::try_new(v.trim()).map_err(drop).and_then(|f| {
            if v.trim().is_empty() {
                Err(())
            } else {
                Ok(f)
            }
        }) {
            return f;
        }
    }
    level
        .and_then(|l| EnvFilter::try_new(l).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT))
}

/// Installs the subscriber (once, at start).
pub fn init(level: Option<&str>, json: bool) {
    let (layer, handle) = reload::Layer::new(filter(level));
    let _ = HANDLE.set(handle);
    let registry = tracing_subscriber::registry().with(layer);
    if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init();
    }
}

/// Applies a new configured level (SIGHUP); an invalid one is refused with the reason.
pub fn set_level(level: Option<&str>) -> Result<(), String> {
    if let Some(l) = level {
        EnvFilter::try_new(l).map_err(|e| format!("log_level {l:?}: {e}"))?;
    }
    let h = HANDLE.get().ok_or("logging not initialised")?;
    h.reload(filter(level)).map_err(|e| e.to_string())
}
