//! Compiles the XDP program `bpf/xdp_prefilter.bpf.c` with clang into `OUT_DIR`, where
//! `src/object.rs` embeds it.
//!
//! When clang is not installed (`$CLANG`, else `clang` in `PATH`) the crate still builds:
//! nothing is written, a `cargo:warning` says so, and `cfg(tollgate_no_bpf_object)` makes
//! `Prefilter::load` return `PrefilterError::NoObject` (the gateway then runs its
//! userspace fallback). The script then watches the `PATH` folders, so installing clang
//! later rebuilds the crate with its program. A clang that is present but fails to
//! compile the program is a build error.
//!
//! `-fdebug-prefix-map=<crate dir>=.` (and running clang from the crate dir) keeps the
//! absolute checkout path out of the debug info, so the object's bytes are the same in
//! every checkout (CI clones into another folder than a developer's).

use std::env;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = "bpf/xdp_prefilter.bpf.c";
const OBJECT: &str = "xdp_prefilter.bpf.o";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rustc-check-cfg=cfg(tollgate_no_bpf_object)");
    println!("cargo:rerun-if-env-changed=CLANG");
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    watch_sources(&crate_dir.join("bpf"))?;

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let Some(clang_path) = locate(&clang) else {
        // Installing clang later must rerun this script (CI runs clippy before its test
        // script installs clang): watch the folders it would appear in.
        for dir in search_dirs(&clang) {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        println!(
            "cargo:warning=`{clang}` not found: building tollgate-ebpf without the XDP \
             object; Prefilter::load will fail and the gateway will filter in userspace \
             (install clang and libbpf-dev to build it)"
        );
        println!("cargo:rustc-cfg=tollgate_no_bpf_object");
        return Ok(());
    };
    // A new clang (an upgrade) rebuilds the object.
    println!("cargo:rerun-if-changed={}", clang_path.display());

    let output = out_dir.join(OBJECT);
    // Debian keeps `asm/types.h` under the target's multiarch directory.
    let (arch_define, multiarch) = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => ("arm64", "aarch64-linux-gnu"),
        Ok("riscv64") => ("riscv", "riscv64-linux-gnu"),
        _ => ("x86", "x86_64-linux-gnu"),
    };
    let status = Command::new(&clang_path)
        .current_dir(&crate_dir)
        .args(["-g", "-O2", "-target", "bpf"])
        .arg(format!("-D__TARGET_ARCH_{arch_define}"))
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-Wall", "-Werror"])
        .arg(format!("-fdebug-prefix-map={}=.", crate_dir.display()))
        .args(["-c", SOURCE, "-o"])
        .arg(&output)
        .status()
        .map_err(|err| format!("running `{}`: {err}", clang_path.display()))?;
    if !status.success() {
        return Err(format!(
            "`{}` failed to compile {SOURCE} ({status})",
            clang_path.display()
        )
        .into());
    }
    Ok(())
}

/// `program` itself when it is a path, else the first match in `PATH`.
fn locate(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    search_dirs(program)
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The folders `locate` looks in.
fn search_dirs(program: &str) -> Vec<PathBuf> {
    if program.contains('/') {
        return Path::new(program)
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
    }
    env::var_os("PATH")
        .map(|paths| {
            env::split_paths(&paths)
                .filter(|dir| dir.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// `rerun-if-changed` for the folder (a file added) and every `.c`/`.h` below it.
fn watch_sources(dir: &Path) -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            watch_sources(&path)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "h")) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}
