//! Pulls from a token-auth registry (the Bearer flow as Docker Hub does it),
//! `ccrun login`/`logout`, token renewal, and redirects that must drop `Authorization`.

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/image_proxy.rs"]
mod image_proxy;
#[path = "support/registry.rs"]
mod registry;

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::Ordering;

use ccrun_image::Store;
use image_build::{busybox_layer, features_layer, Layout};
use image_cli::Env;
use image_proxy::Proxy;
use registry::{Format, Registry, PASSWORD, USER};

struct Fixture {
    reg: Registry,
    _layouts: tempfile::TempDir,
    manifest: ccrun_image::Digest,
    id: ccrun_image::Digest,
}

/// A token registry with `test/multi:v1` (public) and `private/multi:v1`.
fn fixture() -> Fixture {
    let reg = Registry::start_with_token_auth();
    let layouts = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(layouts.path());
    let built = layout.image(&[&busybox_layer(), &features_layer()], "amd64", Some("v1"));
    reg.push(layouts.path(), "v1", "test/multi", Format::Oci);
    reg.push(layouts.path(), "v1", "private/multi", Format::DockerV2s2);
    Fixture {
        reg,
        _layouts: layouts,
        manifest: built.manifest,
        id: built.config,
    }
}

fn login(env: &Env, registry: &str, password: &str) -> std::process::Output {
    let mut child = env
        .cmd(&["login", "-u", USER, "--password-stdin", registry])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    child.wait_with_output().expect("login output")
}

#[test]
fn pulls_through_bearer_token_flow() {
    let f = fixture();
    let env = Env::new();
    let name = format!("{}/test/multi:v1", f.reg.addr);
    env.ok(&["pull", &name]);
    let token = f.reg.token.as_ref().expect("token server");
    assert!(
        token.requests.load(Ordering::Relaxed) >= 1,
        "a token was fetched"
    );
    let store = Store::open(&env.root()).expect("store");
    assert_eq!(
        store
            .resolve(&name)
            .expect("resolve")
            .expect("present")
            .record
            .id,
        f.id
    );

    let by_digest = format!("{}/test/multi@{}", f.reg.addr, f.manifest);
    env.ok(&["pull", &by_digest]);
    assert!(store.resolve(&by_digest).expect("resolve").is_some());
}

#[test]
fn private_repository_needs_login() {
    let f = fixture();
    let env = Env::new();
    let name = format!("{}/private/multi:v1", f.reg.addr);
    let err = env.fails(&["pull", &name]);
    assert!(err.to_lowercase().contains("unauthorized"), "{err}");

    let bad = login(&env, &f.reg.addr, "wrong");
    assert_eq!(
        bad.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        !env.docker_config().join("config.json").exists(),
        "nothing saved on failure"
    );

    let good = login(&env, &f.reg.addr, PASSWORD);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("Login Succeeded"));
    let config =
        std::fs::read_to_string(env.docker_config().join("config.json")).expect("config.json");
    assert!(
        config.contains(&f.reg.addr) && config.contains("\"auth\""),
        "{config}"
    );

    env.ok(&["pull", &name]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("present");
    assert_eq!(image.record.id, f.id);

    let out = env.ok(&["logout", &f.reg.addr]);
    assert!(out.contains("Removing login credentials"), "{out}");
    let config =
        std::fs::read_to_string(env.docker_config().join("config.json")).expect("config.json");
    assert!(!config.contains(&f.reg.addr), "{config}");
}

#[test]
fn redirected_blobs_get_no_authorization() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    proxy.faults.redirect_blobs.store(true, Ordering::Relaxed);
    let env = Env::new();
    env.ok(&["pull", &format!("{}/test/multi:v1", proxy.addr)]);
    let to_registry = proxy.blob_gets();
    assert_eq!(to_registry.len(), 3, "config + 2 layers: {to_registry:?}");
    for r in &to_registry {
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Bearer ")),
            "the registry gets the token: {r:?}"
        );
    }
    let cdn = proxy.cdn_log.lock().expect("cdn log").clone();
    assert_eq!(cdn.len(), 3, "{cdn:?}");
    for r in &cdn {
        assert!(
            r.header("authorization").is_none(),
            "Authorization leaked to another host: {r:?}"
        );
    }
}

#[test]
fn expired_token_is_renewed_mid_pull() {
    let f = fixture();
    let token = f.reg.token.as_ref().expect("token server");
    // Tokens live 2 s (exp 58 s ago plus the registry's 60 s leeway), and blobs are slow.
    token.lifetime.store(-58, Ordering::Relaxed);
    let proxy = Proxy::start(&f.reg.addr);
    proxy.faults.throttle_ms.store(50, Ordering::Relaxed);
    let env = Env::new();
    let before = token.requests.load(Ordering::Relaxed);
    let cmd = ["pull", &format!("{}/test/multi:v1", proxy.addr)];
    let mut env_cmd = env.cmd(&cmd);
    // One layer at a time, so later blob requests come after the token expired.
    let out = env_cmd.env("CCRUN_PULL_JOBS", "1").output().expect("pull");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fetched = token.requests.load(Ordering::Relaxed) - before;
    assert!(
        fetched >= 2,
        "token renewed after expiry ({fetched} token requests)"
    );
    let statuses: Vec<_> = f
        .reg
        .log()
        .lines()
        .filter(|l| l.contains("\" 401 "))
        .map(str::to_string)
        .collect();
    assert!(
        statuses.len() >= 2,
        "the registry refused the expired token: {statuses:?}"
    );
}
