//! Unit tests of the container executor's pure parts: the `run` argument
//! vector, GPU flags, spec and name checks, reading `inspect` answers,
//! exit statuses, container references and global CLI arguments.

use super::*;

fn request() -> RunRequest {
    RunRequest {
        command: "echo \"$X\" > out; exit 3".into(),
        cwd: PathBuf::from("/srv/bench/run-1"),
        env: vec![
            ("X".into(), "it's \"quoted\" $HOME `id` a b".into()),
            ("EMPTY".into(), String::new()),
            ("MULTI".into(), "line1\nline2".into()),
        ],
        time_budget: Duration::from_secs(10),
        timeout: Duration::from_secs(20),
        grace: Duration::from_secs(2),
        stdout_path: PathBuf::from("/logs/r1/stdout.log"),
        stderr_path: PathBuf::from("/logs/r1/stderr.log"),
        log_cap_bytes: 1 << 20,
    }
}

/// Index of the first `flag value` pair with this value.
fn pair(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn default_args_isolate_the_network_and_end_with_the_command() {
    let spec = ContainerSpec::new("busybox:1");
    let args = run_args(RuntimeKind::Docker, &spec, "run-1", &request()).unwrap();
    assert_eq!(
        &args[..6],
        [
            "run",
            "-d",
            "--name",
            "run-1",
            "--label",
            "picidae.run=run-1"
        ]
    );
    assert!(pair(&args, "--network", "none"), "{args:?}");
    assert!(args.contains(&"--init".to_string()));
    assert!(
        pair(&args, "-v", "/srv/bench/run-1:/srv/bench/run-1"),
        "{args:?}"
    );
    assert!(pair(&args, "-v", "/logs/r1:/logs/r1"), "{args:?}");
    assert!(pair(&args, "-w", "/srv/bench/run-1"));
    let n = args.len();
    assert_eq!(
        &args[n - 4..],
        ["busybox:1", "/bin/sh", "-c", "echo \"$X\" > out; exit 3"]
    );
    for absent in [
        "--memory",
        "--cpus",
        "--pids-limit",
        "--gpus",
        "--user",
        "--device",
    ] {
        assert!(!args.iter().any(|a| a == absent), "{absent} in {args:?}");
    }
    // Only the run directory and the log directory are mounted.
    assert_eq!(args.iter().filter(|a| *a == "-v").count(), 2);
}

#[test]
fn network_and_init_can_be_enabled_and_disabled() {
    let spec = ContainerSpec {
        network: true,
        init: false,
        ..ContainerSpec::new("img")
    };
    let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
    assert!(
        !args.iter().any(|a| a == "--network" || a == "--init"),
        "{args:?}"
    );
}

#[test]
fn limits_user_and_extra_args() {
    let spec = ContainerSpec {
        memory_mb: Some(512),
        cpus: Some(1.5),
        pids_limit: Some(64),
        user: Some("1000:1000".into()),
        extra_args: vec!["--security-opt".into(), "no-new-privileges".into()],
        ..ContainerSpec::new("img")
    };
    let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
    assert!(pair(&args, "--memory", "512m"));
    assert!(pair(&args, "--memory-swap", "512m"));
    assert!(pair(&args, "--cpus", "1.5"));
    assert!(pair(&args, "--pids-limit", "64"));
    assert!(pair(&args, "--user", "1000:1000"));
    let img = args.iter().position(|a| a == "img").unwrap();
    assert_eq!(&args[img - 2..img], ["--security-opt", "no-new-privileges"]);
    let whole = ContainerSpec {
        cpus: Some(2.0),
        ..ContainerSpec::new("img")
    };
    let args = run_args(RuntimeKind::Docker, &whole, "n", &request()).unwrap();
    assert!(pair(&args, "--cpus", "2"));
}

#[test]
fn readonly_mounts_get_ro_and_bad_paths_are_refused() {
    let spec = ContainerSpec {
        readonly_mounts: vec![PathBuf::from("/data/set"), PathBuf::from("/opt/models")],
        ..ContainerSpec::new("img")
    };
    let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
    assert!(pair(&args, "-v", "/data/set:/data/set:ro"), "{args:?}");
    assert!(pair(&args, "-v", "/opt/models:/opt/models:ro"), "{args:?}");

    for bad in ["relative/dir", "/has:colon", "/new\nline"] {
        let spec = ContainerSpec {
            readonly_mounts: vec![PathBuf::from(bad)],
            ..ContainerSpec::new("img")
        };
        let err = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap_err();
        assert!(matches!(err, ExecError::InvalidRequest(_)), "{bad}: {err}");
    }
    let clash = ContainerSpec {
        readonly_mounts: vec![PathBuf::from("/srv/bench/run-1")],
        ..ContainerSpec::new("img")
    };
    assert!(run_args(RuntimeKind::Docker, &clash, "n", &request()).is_err());
    let mut req = request();
    req.cwd = PathBuf::from("/srv/bench/a:b");
    assert!(run_args(RuntimeKind::Docker, &ContainerSpec::new("img"), "n", &req).is_err());
}

#[test]
fn log_directories_inside_cwd_are_not_mounted_twice() {
    let mut req = request();
    req.stdout_path = PathBuf::from("/srv/bench/run-1/logs/out");
    req.stderr_path = PathBuf::from("/elsewhere/err");
    assert_eq!(
        writable_mounts(&req),
        [
            PathBuf::from("/srv/bench/run-1"),
            PathBuf::from("/elsewhere")
        ]
    );
    req.stderr_path = req.stdout_path.clone();
    assert_eq!(writable_mounts(&req), [PathBuf::from("/srv/bench/run-1")]);
}

#[test]
fn env_values_are_single_verbatim_arguments() {
    let args = run_args(
        RuntimeKind::Docker,
        &ContainerSpec::new("img"),
        "n",
        &request(),
    )
    .unwrap();
    assert!(
        pair(&args, "-e", "X=it's \"quoted\" $HOME `id` a b"),
        "{args:?}"
    );
    assert!(pair(&args, "-e", "EMPTY="));
    assert!(pair(&args, "-e", "MULTI=line1\nline2"));
    // Rendered for a shell (e.g. in a log line), the vector reads back
    // to the same words.
    let line = crate::shell::join(&args);
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("for a in {line}; do printf '%s\\0' \"$a\"; done"))
        .output()
        .unwrap();
    let mut words: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    assert_eq!(words.pop().as_deref(), Some(""));
    assert_eq!(words, args);
}

#[test]
fn gpus_for_docker_and_podman() {
    let d = |g: &str| gpu_args(RuntimeKind::Docker, g).unwrap();
    assert_eq!(d("all"), ["--gpus", "all"]);
    assert_eq!(d("2"), ["--gpus", "2"]);
    assert_eq!(d("device=1"), ["--gpus", "device=1"]);
    assert_eq!(d("device=0,1"), ["--gpus", "\"device=0,1\""]);
    assert_eq!(d("\"device=0,1\""), ["--gpus", "\"device=0,1\""]);
    assert_eq!(
        d("all,capabilities=utility"),
        ["--gpus", "all,capabilities=utility"]
    );
    let p = |g: &str| gpu_args(RuntimeKind::Podman, g);
    assert_eq!(p("all").unwrap(), ["--device", "nvidia.com/gpu=all"]);
    assert_eq!(
        p("device=0,1").unwrap(),
        [
            "--device",
            "nvidia.com/gpu=0",
            "--device",
            "nvidia.com/gpu=1"
        ]
    );
    assert!(p("2").is_err());

    let spec = ContainerSpec {
        gpus: Some("device=0,1".into()),
        ..ContainerSpec::new("img")
    };
    let args = run_args(RuntimeKind::Docker, &spec, "n", &request()).unwrap();
    assert!(pair(&args, "--gpus", "\"device=0,1\""), "{args:?}");
}

#[test]
fn invalid_specs_and_names_are_refused() {
    let req = request();
    let bad_specs = [
        ContainerSpec::new(""),
        ContainerSpec::new("--privileged"),
        ContainerSpec {
            memory_mb: Some(0),
            ..ContainerSpec::new("img")
        },
        ContainerSpec {
            cpus: Some(f64::NAN),
            ..ContainerSpec::new("img")
        },
        ContainerSpec {
            cpus: Some(0.0),
            ..ContainerSpec::new("img")
        },
        ContainerSpec {
            pids_limit: Some(0),
            ..ContainerSpec::new("img")
        },
        ContainerSpec {
            gpus: Some(" ".into()),
            ..ContainerSpec::new("img")
        },
    ];
    for spec in bad_specs {
        assert!(
            run_args(RuntimeKind::Docker, &spec, "n", &req).is_err(),
            "{spec:?}"
        );
    }
    for name in ["", "-x", "a b", "a/b", "a:b"] {
        assert!(!valid_container_name(name), "{name:?}");
        assert!(run_args(RuntimeKind::Docker, &ContainerSpec::new("i"), name, &req).is_err());
    }
    assert!(valid_container_name("picidae-12-1700000000000-0"));
}

#[test]
fn timestamps_parse_to_unix_nanoseconds() {
    assert_eq!(parse_timestamp_ns("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_timestamp_ns("2023-11-14T22:13:20.5Z"),
        Some(1_700_000_000_500_000_000)
    );
    assert_eq!(
        parse_timestamp_ns("2023-11-14T22:13:20.123456789Z"),
        Some(1_700_000_000_123_456_789)
    );
    assert_eq!(
        parse_timestamp_ns("2023-11-15T00:13:20.000000001+02:00"),
        Some(1_700_000_000_000_000_001)
    );
    assert_eq!(
        parse_timestamp_ns("2024-02-29T12:00:00-01:30"),
        Some(1_709_213_400 * 1_000_000_000)
    );
    assert_eq!(parse_timestamp_ns("0001-01-01T00:00:00Z"), None);
    assert_eq!(parse_timestamp_ns("garbage"), None);
    assert_eq!(parse_timestamp_ns("2024-13-01T00:00:00Z"), None);
}

#[test]
fn inspect_output_is_parsed() {
    let json = r#"[{"Id":"abc123def456abc123","Name":"/run-1",
        "State":{"Status":"exited","Running":false,"OOMKilled":true,"ExitCode":0,
                 "Pid":0,"Error":"","StartedAt":"2023-11-14T22:13:20Z",
                 "FinishedAt":"2023-11-14T22:13:21.25Z"},
        "Config":{"Labels":{"picidae.run":"run-1"}}}]"#;
    let s = parse_inspect(json).unwrap().unwrap();
    assert_eq!(s.id, "abc123def456abc123");
    assert_eq!(s.name, "run-1");
    assert!(!s.running && s.oom_killed && !s.never_started());
    assert_eq!(s.run_label.as_deref(), Some("run-1"));
    assert_eq!(
        s.finished_at_ns.unwrap() - s.started_at_ns.unwrap(),
        1_250_000_000
    );
    assert_eq!(decode_container_exit(&s), (None, Some(libc::SIGKILL)));
    assert_eq!(parse_inspect("[]").unwrap(), None);
    assert!(parse_inspect("nope").is_err());
    assert!(parse_inspect(r#"[{"Id":"x"}]"#).is_err());

    let created = r#"[{"Id":"abc","State":{"Status":"created","Running":false,
        "StartedAt":"0001-01-01T00:00:00Z","ExitCode":0},"Config":{"Labels":null}}]"#;
    let s = parse_inspect(created).unwrap().unwrap();
    assert!(s.never_started() && s.run_label.is_none());
}

#[test]
fn exit_statuses_decode_like_a_shell() {
    let st = |code: i64| ContainerState {
        exit_code: code,
        ..ContainerState::default()
    };
    assert_eq!(decode_container_exit(&st(0)), (Some(0), None));
    assert_eq!(decode_container_exit(&st(3)), (Some(3), None));
    assert_eq!(decode_container_exit(&st(137)), (None, Some(9)));
    assert_eq!(decode_container_exit(&st(143)), (None, Some(15)));
    assert_eq!(decode_container_exit(&st(-1)), (None, None));
}

#[test]
fn ids_and_global_args() {
    assert_eq!(normalize_container_ref("docker:abc123").unwrap(), "abc123");
    assert_eq!(normalize_container_ref("podman:abc123").unwrap(), "abc123");
    assert_eq!(normalize_container_ref("run-1").unwrap(), "run-1");
    assert!(normalize_container_ref("docker:").is_err());
    assert!(normalize_container_ref("docker:-rf").is_err());

    let d = ContainerRuntime::docker()
        .with_host("unix:///tmp/d.sock")
        .with_global_arg("--log-level=error");
    assert_eq!(
        d.global_cli_args(),
        ["--host", "unix:///tmp/d.sock", "--log-level=error"]
    );
    let p = ContainerRuntime::podman().with_host("unix:///tmp/p.sock");
    assert_eq!(
        p.global_cli_args(),
        ["--remote", "--url", "unix:///tmp/p.sock"]
    );
    assert!(ContainerRuntime::podman().global_cli_args().is_empty());
    assert_eq!(ContainerRuntime::docker().program, PathBuf::from("docker"));
}
