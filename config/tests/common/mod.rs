//! What the configuration tests share: a temporary folder (with `certs/`, removed on drop),
//! a configuration file written there and loaded as the gateway loads it, and the
//! `PATH:LINE:COL` an error should name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_config::Plan;

/// A temporary folder holding a configuration file and its `certs/`.
pub struct TempConfig {
    dir: PathBuf,
}

impl TempConfig {
    /// A fresh folder `tollgate-config-<name>-<pid>-<n>` with an empty `certs/`.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tollgate-config-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("certs")).expect("create temp dir");
        Self { dir }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration file's path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("tollgate.toml")
    }

    /// `relative` inside the folder, as text for a TOML value.
    pub fn path(&self, relative: &str) -> String {
        self.dir.join(relative).display().to_string()
    }

    /// Writes `text` as the configuration file and loads it.
    pub fn load(&self, text: &str) -> Result<Plan, String> {
        std::fs::write(self.config_path(), text).expect("write config");
        tollgate_config::load(&self.config_path()).map_err(|e| e.to_string())
    }

    /// The plan `text` compiles to (panics with the error and the text otherwise).
    pub fn plan(&self, text: &str) -> Plan {
        self.load(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The error `text` is refused with (panics if it compiles).
    pub fn error(&self, text: &str) -> String {
        match self.load(text) {
            Ok(_) => panic!("compiled:\n{text}"),
            Err(e) => e,
        }
    }

    /// `PATH:LINE:COL` of the first `needle` in `text`.
    pub fn at(&self, text: &str, needle: &str) -> String {
        let offset = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in text"));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        format!("{}:{line}:{column}", self.config_path().display())
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
