//! The failures a 650-case fault probe of `kn` found, each held by a test over a family of
//! cases: concurrent runs on one directory, corrupt runs resumed or edited, planted symlinks,
//! unbounded thread counts, endless config files, user fact files as `--data`, file-size
//! limits, bad output paths, empty selections, path-like relation ids and terminal escapes.
//! (Absurd sizes and NaN-producing settings in model files are held in kn-model's
//! `tests/bad_input.rs` and kn-config's unit tests; here only their exit code.)

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    fact_ids, fixture, kn_command as kn, limit_file_size, tiny_discover_args as discover_args,
};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts exit 2 (bad input) with every fragment in the message.
fn refused(output: &Output, fragments: &[&str]) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(2), "expected exit 2: {message}");
    for fragment in fragments {
        assert!(message.contains(fragment), "{fragment:?} not in: {message}");
    }
    assert!(!message.contains("panicked"), "{message}");
}

/// Sets `option` to `value` in `args`, replacing its value when present.
fn set_option(args: &mut Vec<String>, option: &str, value: &str) {
    match args.iter().position(|a| a == option) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([option.to_string(), value.to_string()]),
    }
}

fn run(args: &[String]) -> Output {
    kn().args(args).output().unwrap()
}

/// A finished tiny discover run in a temporary directory.
fn finished_run() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = run(&discover_args(&out, &[]));
    assert!(output.status.success(), "{}", stderr(&output));
    (dir, out)
}

fn neuron_lines(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("neurons.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn absurd_model_sizes_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["1e9", "2147483648", "4611686018427387904"] {
        let model = dir.path().join(format!("m{value}"));
        std::fs::create_dir(&model).unwrap();
        for entry in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
        }
        let config = std::fs::read_to_string(model.join("config.json")).unwrap();
        let config = config.replace(
            "\"num_hidden_layers\": 3",
            &format!("\"num_hidden_layers\": {value}"),
        );
        std::fs::write(model.join("config.json"), config).unwrap();
        let output = kn()
            .args([
                "predict",
                "--model",
                model.to_str().unwrap(),
                "--prompt",
                "Hello",
            ])
            .output()
            .unwrap();
        refused(&output, &["num_hidden_layers"]);
    }
}

#[test]
fn a_run_directory_is_locked_while_written_and_never_doubles_a_fact() {
    let (_dir, out) = finished_run();
    let expected = fact_ids(&out);
    // Held by another process (here: this test), the directory is refused, naming it.
    let lock = kn_schema::RunLock::acquire(&out, "test holder", kn_schema::Access::Shared).unwrap();
    let output = run(&discover_args(&out, &[]));
    refused(&output, &["is in use by process", "test holder"]);
    drop(lock);

    // Two runs started together on one fresh directory: whatever the timing, every fact is
    // there once, and stats.json counts each once.
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let children: Vec<_> = (0..2)
            .map(|_| {
                kn().args(discover_args(&out, &[]))
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for output in &outputs {
            let code = output.status.code();
            // The loser names the winner's process, or "another process" when it looks in the
            // instant between the winner's lock and the note of who holds it.
            assert!(
                code == Some(0) || (code == Some(2) && stderr(output).contains("is in use by")),
                "{code:?}: {}",
                stderr(output)
            );
        }
        let mut facts = fact_ids(&out);
        assert_eq!(facts, expected, "the facts of a lone run, each once");
        facts.dedup();
        assert_eq!(facts.len(), expected.len());
        let stats: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap())
                .unwrap();
        assert_eq!(stats["summary"]["facts"], expected.len(), "{stats}");
    }
}

#[test]
fn corrupt_runs_are_refused_by_resume_and_by_the_editing_commands() {
    let (_dir, out) = finished_run();
    let lines = neuron_lines(&out);
    let first = lines[0].clone();
    let first_fact: serde_json::Value = serde_json::from_str(&first).unwrap();
    let fact = first_fact["fact"].as_str().unwrap().to_string();
    let relation = first_fact["relation"].as_str().unwrap().to_string();
    let with_fact = |id: &str| {
        first.replace(
            &format!("\"fact\":\"{fact}\""),
            &format!("\"fact\":\"{id}\""),
        )
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            [lines.clone(), vec![first.clone()]].concat(),
            "appears twice",
        ),
        (vec![with_fact("garbage")], "not RELATION:INDEX"),
        (
            vec![with_fact(&format!("{relation}:999999"))],
            "is not one of",
        ),
        (vec![with_fact("P19:0")], "filed under relation"),
        (
            vec!["{\"fact\": 3}".into()],
            "not a kn discover fact record",
        ),
    ];
    let neurons = out.join("neurons.jsonl");
    for (body, message) in cases {
        std::fs::write(&neurons, body.join("\n") + "\n").unwrap();
        // Resuming refuses, naming the line, and counts nothing.
        let output = run(&discover_args(&out, &[]));
        refused(&output, &[message, "line "]);
        // So do the commands that read a run.
        let model = fixture("tiny-llama");
        let neurons_arg = neurons.display().to_string();
        for args in [
            vec!["suppress", "--model", &model, "--neurons", &neurons_arg],
            vec![
                "erase",
                "--model",
                &model,
                "--neurons",
                &neurons_arg,
                "--relation",
                &relation,
            ],
            vec![
                "edit",
                "--model",
                &model,
                "--neurons",
                &neurons_arg,
                "--facts",
                "1",
            ],
        ] {
            let output = kn().args(&args).output().unwrap();
            refused(&output, &[message]);
        }
    }
}

#[test]
fn a_planted_symlink_at_a_temporary_name_is_not_followed() {
    let (dir, out) = finished_run();
    let records = neuron_lines(&out);
    let record: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    let fact = record["fact"].as_str().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    let patch = dir.path().join("edit.safetensors");
    for planted in ["edit.safetensors.tmp", ".edit.safetensors.partial"] {
        std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
    }
    let output = kn()
        .args(["edit", "--model", &fixture("tiny-llama"), "--neurons"])
        .arg(out.join("neurons.jsonl"))
        .args(["--fact", fact, "--new-answer", "Rome", "--patch-out"])
        .arg(&patch)
        .output()
        .unwrap();
    // The edit may or may not succeed on a random model's answer; the victim is never written.
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"keep me",
        "{}",
        stderr(&output)
    );
    if output.status.success() {
        assert!(patch.is_file());
    }
}

#[test]
fn thread_counts_are_bounded() {
    for option in ["--threads", "--concurrent-passes"] {
        let started = Instant::now();
        let output = kn()
            .args([
                "attribute",
                "--model",
                &fixture("tiny-llama"),
                "--prompt",
                "The capital of France is",
                "--answer",
                "Paris",
                option,
                "10000",
            ])
            .output()
            .unwrap();
        refused(&output, &[option, "per core"]);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn a_memory_budget_must_be_a_number_of_gib() {
    for (command, value) in [
        ("attribute", "-1"),
        ("attribute", "NaN"),
        ("discover", "inf"),
    ] {
        let budget = format!("--memory-budget={value}");
        let mut args = vec![command, "--model", "default", budget.as_str()];
        if command == "attribute" {
            args.extend(["--prompt", "The capital of France is", "--answer", "Paris"]);
        } else {
            args.extend(["--out", "/nonexistent/run"]);
        }
        let output = kn().args(&args).output().unwrap();
        refused(&output, &["--memory-budget"]);
    }
    // A budget that holds one row at a time still attributes.
    let output = kn()
        .args([
            "attribute",
            "--model",
            &fixture("tiny-llama"),
            "--prompt",
            "The capital of France is",
            "--answer",
            "Paris",
            "--steps",
            "4",
            "--memory-budget",
            "0.000001",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_endless_or_huge_config_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, "x".repeat(5 << 20)).unwrap();
    for config in [Path::new("/dev/zero"), huge.as_path()] {
        let started = Instant::now();
        let output = kn()
            .arg("--config")
            .arg(config)
            .args([
                "predict",
                "--model",
                &fixture("tiny-llama"),
                "--prompt",
                "Hi",
            ])
            .output()
            .unwrap();
        refused(&output, &["larger than"]);
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    // An invalid 200 KB TOML line is quoted shortened, not whole.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("threads = \"{}", "y".repeat(200_000))).unwrap();
    let output = kn()
        .arg("--config")
        .arg(&bad)
        .args([
            "predict",
            "--model",
            &fixture("tiny-llama"),
            "--prompt",
            "Hi",
        ])
        .output()
        .unwrap();
    refused(&output, &["not valid TOML", "more characters"]);
    assert!(
        output.stderr.len() < 4000,
        "{} bytes of error",
        output.stderr.len()
    );
}

#[test]
fn the_documented_user_fact_file_is_accepted_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.jsonl");
    std::fs::write(
        &facts,
        concat!(
            r#"{"relation": "capital", "subject": "France", "object": "Paris", "templates": ["The capital of [X] is [Y].", "[X]'s capital is [Y].", "[X] has its capital in [Y]."]}"#,
            "\n",
            r#"{"relation": "capital", "subject": "Italy", "object": "Rome", "prompts": ["Italy's capital city is", "The capital of Italy is", "Italy has its capital in"]}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let mut args = discover_args(&out, &[]);
    set_option(&mut args, "--relations", "capital");
    set_option(&mut args, "--data", &facts.display().to_string());
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fact_ids(&out), ["capital:0", "capital:1"]);
}

#[test]
fn a_file_size_limit_fails_the_write_instead_of_killing_the_process() {
    let (_dir, reference) = finished_run();
    let size = std::fs::metadata(reference.join("neurons.jsonl"))
        .unwrap()
        .len();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut command = kn();
    command.args(discover_args(&out, &[]));
    // The limit alone, with SIGXFSZ left at its default (which kills): kn must ignore it.
    limit_file_size(&mut command, size / 2, false);
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{:?}: {}",
        output.status,
        stderr(&output)
    );
    assert!(stderr(&output).contains("too large"), "{}", stderr(&output));
    let text = std::fs::read_to_string(out.join("neurons.jsonl")).unwrap();
    assert!(text.ends_with('\n') && !text.is_empty(), "a torn last line");
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
    }
}

#[test]
fn bad_output_paths_exit_2_before_any_work() {
    let (dir, run_dir) = finished_run();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let below_file = file.join("sub");
    for out in [&file, &below_file] {
        let started = Instant::now();
        let output = run(&discover_args(out, &["--steps", "400"]));
        refused(&output, &["--out"]);
        assert!(started.elapsed() < Duration::from_secs(20), "checked late");
    }
    let model = fixture("tiny-llama");
    let neurons = run_dir.join("neurons.jsonl").display().to_string();
    let directory = dir.path().display().to_string();
    let missing = dir.path().join("no/such/x.json").display().to_string();
    for out in [&directory, &missing] {
        let output = kn()
            .args([
                "suppress",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--out",
                out,
            ])
            .output()
            .unwrap();
        refused(&output, &["--out"]);
        let output = kn()
            .args([
                "erase",
                "--model",
                &model,
                "--neurons",
                &neurons,
                "--relation",
                "P36",
                "--out",
                out,
            ])
            .output()
            .unwrap();
        refused(&output, &["--out"]);
    }
    let output = kn()
        .args([
            "attribute",
            "--model",
            &model,
            "--prompt",
            "The capital of France is",
            "--answer",
            "Paris",
            "--out",
            &directory,
        ])
        .output()
        .unwrap();
    refused(&output, &["--out"]);
}

#[test]
fn an_empty_selection_is_an_error_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, fragment) in [
        (vec!["--relations", ","], "names no relation"),
        (vec!["--relations", " , ,"], "names no relation"),
        (vec!["--min-prompts", "1000"], "no fact was selected"),
        (
            vec!["--correct-rank", "1", "--correct-prompts", "1000"],
            "no fact was selected",
        ),
    ] {
        let out = dir.path().join(format!("run{}", extra.join("")));
        let mut args = discover_args(&out, &[]);
        for pair in extra.chunks(2) {
            set_option(&mut args, pair[0], pair[1]);
        }
        refused(&run(&args), &[fragment]);
    }
}

#[test]
fn relation_ids_from_the_data_cannot_leave_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pararel");
    std::fs::create_dir_all(data.join("patterns")).unwrap();
    std::fs::write(
        dir.path().join("x.jsonl"),
        "{\"pattern\": \"[X] is in [Y].\"}\n",
    )
    .unwrap();
    for id in ["../../x", "../x", "a/b", ".x"] {
        std::fs::write(
            data.join("query_pairs.json"),
            serde_json::json!({ id: [["Paris", "France"]] }).to_string(),
        )
        .unwrap();
        std::fs::write(
            data.join("relations.jsonl"),
            serde_json::json!({"relation": id, "label": "x", "type": "N-1"}).to_string() + "\n",
        )
        .unwrap();
        let out = dir.path().join("run");
        let mut args = discover_args(&out, &[]);
        set_option(&mut args, "--relations", "all");
        set_option(&mut args, "--data", &data.display().to_string());
        refused(&run(&args), &["relation id"]);
    }
    // The same rule for a user fact file.
    let facts = dir.path().join("facts.jsonl");
    std::fs::write(
        &facts,
        r#"{"relation": "../../etc", "subject": "a", "object": "b", "prompts": ["a is"]}"#,
    )
    .unwrap();
    let out = dir.path().join("run2");
    let mut args = discover_args(&out, &[]);
    args.extend(["--data".into(), facts.display().to_string()]);
    refused(&run(&args), &["relation id"]);
}

#[test]
fn control_characters_in_user_text_are_printed_escaped() {
    let prompt = "The capital of \u{1b}[2J\u{1b}]0;pwned\u{7} France is";
    let output = kn()
        .args([
            "predict",
            "--model",
            &fixture("tiny-llama"),
            "--prompt",
            prompt,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\\u{1b}[2J"), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    // In an error (a usage error quoting the value, and a library error quoting the prompt).
    let output = kn()
        .args([
            "predict",
            "--model",
            &fixture("tiny-llama"),
            "--prompt",
            "x",
            "--top-k",
            "\u{1b}[31m",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(!output.stderr.contains(&0x1b), "{}", stderr(&output));
    let output = kn()
        .args([
            "attribute",
            "--model",
            &fixture("tiny-llama"),
            "--prompt",
            "\u{1b}[2J",
            "--answer",
            "\u{1b}[2J",
        ])
        .output()
        .unwrap();
    assert!(!output.stderr.contains(&0x1b), "{}", stderr(&output));
    assert!(
        !output.stdout.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
