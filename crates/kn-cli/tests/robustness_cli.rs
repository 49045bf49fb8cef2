//! `kn` under adverse conditions and the global options: a full disk while writing results
//! (simulated with a file-size limit, which fails writes with EFBIG like ENOSPC), an interrupted
//! run (SIGINT and SIGKILL), TOML config files, verbosity flags, saved score matrices and their
//! merge. Outputs must never hold a partial line or a half-written file, and a rerun must finish
//! the job.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{fixture, kn_command as kn, limit_file_size, tiny_discover_args as discover_args};

fn ok(output: &Output) {
    common::ok(output, "kn");
}

/// Every line of neurons.jsonl is a whole JSON record and the file ends with a newline.
fn whole_lines(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("neurons.jsonl")).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a partial line survived"
    );
    text.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("a whole record")["fact"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn no_partial_files(dir: &Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".partial") && !name.ends_with(".tmp"),
            "temporary file left behind: {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_full_disk_fails_cleanly_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    ok(&kn().args(discover_args(&reference, &[])).output().unwrap());
    let expected = whole_lines(&reference);
    let size = std::fs::metadata(reference.join("neurons.jsonl"))
        .unwrap()
        .len();

    let out = dir.path().join("run");
    let mut command = kn();
    command.args(discover_args(&out, &[]));
    limit_file_size(&mut command, size / 2, true);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "a failed write is an internal failure: {stderr}"
    );
    assert!(
        stderr.contains("cannot write") && stderr.contains("too large"),
        "unclear message: {stderr}"
    );
    let partial = whole_lines(&out);
    assert!(
        !partial.is_empty() && partial.len() < expected.len(),
        "the limit should stop the run midway"
    );
    no_partial_files(&out);

    // With space again, the same command resumes and ends with exactly the reference facts.
    ok(&kn().args(discover_args(&out, &[])).output().unwrap());
    assert_eq!(whole_lines(&out), expected);
    no_partial_files(&out);
}

#[test]
fn a_full_disk_leaves_earlier_outputs_whole_in_every_writer() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(&kn().args(discover_args(&run, &[])).output().unwrap());
    let run_text = run.display().to_string();
    // kn report: the first report is complete; a second one on a full disk fails and leaves it.
    ok(&kn().args(["report", &run_text]).output().unwrap());
    let html = run.join("report/report.html");
    let before = std::fs::read(&html).unwrap();
    let mut command = kn();
    command.args(["report", &run_text]);
    limit_file_size(&mut command, 2000, true);
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "report: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read(&html).unwrap(),
        before,
        "the earlier report was damaged"
    );
    no_partial_files(&run);

    // kn attribute --out: no file at all rather than a truncated matrix.
    let scores = dir.path().join("scores.npy");
    let mut command = kn();
    command.args([
        "attribute",
        "--model",
        &fixture("tiny-llama"),
        "--prompt",
        "The capital of France is",
        "--answer",
        "Paris",
        "--steps",
        "2",
    ]);
    command.args(["--out", &scores.display().to_string()]);
    limit_file_size(&mut command, 64, true);
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "attribute: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!scores.exists(), "a truncated matrix was left");
    no_partial_files(dir.path());
}

#[test]
fn an_interrupted_run_keeps_whole_lines_and_resumes() {
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        // Many integration points so that the run is still going when the first fact lands.
        let mut slow = discover_args(&out, &[]);
        let steps = slow.iter().position(|a| a == "--steps").unwrap() + 1;
        slow[steps] = "400".into();
        let mut child = kn().args(&slow).stderr(Stdio::piped()).spawn().unwrap();
        let started = Instant::now();
        while whole_lines(&out).is_empty() && started.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let output = child.wait_with_output().unwrap();
        let status = output.status;
        if signal == libc::SIGINT && !status.success() {
            assert!(String::from_utf8_lossy(&output.stderr).contains("the same command resumes"));
        }
        if signal == libc::SIGINT && !status.success() {
            // Ctrl-C stops after the fact in progress, with its own exit code.
            assert_eq!(status.code(), Some(130), "SIGINT: {status:?}");
        }
        let done = whole_lines(&out);
        assert!(
            !status.success() || done.len() == 6,
            "signal {signal}: the run neither stopped nor finished"
        );
        assert!(
            !done.is_empty(),
            "signal {signal}: no fact was finished before the signal"
        );
        no_partial_files(&out);
        let output = kn().args(&slow).output().unwrap();
        ok(&output);
        let facts = whole_lines(&out);
        assert_eq!(
            facts.len(),
            6,
            "signal {signal}: the resumed run did not finish every fact once"
        );
        assert_eq!(
            &facts[..done.len()],
            &done[..],
            "finished facts were rewritten"
        );
    }
}

#[test]
fn a_toml_config_holds_the_options_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let config = dir.path().join("kn.toml");
    std::fs::write(
        &config,
        format!(
            "model = {:?}\nseed = 7\nthreads = 1\n\n[discover]\nrelations = [\"P36\", \"P1376\"]\nfacts_per_relation = 2\n\
             steps = 4\ncorrect-rank = 0\nsingle-token = false\nout = {:?}\n\n[suppress]\nbatch-size = 4\n",
            fixture("tiny-llama"),
            out.display().to_string()
        ),
    )
    .unwrap();
    let config_text = config.display().to_string();
    ok(&kn()
        .args(["--config", &config_text, "discover", "--steps", "3"])
        .output()
        .unwrap());
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(recorded["facts_per_relation"], 2);
    assert_eq!(recorded["seed"], 7);
    assert_eq!(
        recorded["steps"], 3,
        "the command line must win over the file"
    );
    assert_eq!(recorded["relations"], serde_json::json!(["P36", "P1376"]));
    assert_eq!(whole_lines(&out).len(), 4);

    // The config may also come after the subcommand.
    ok(&kn()
        .args(["discover", "--steps", "3", "--config", &config_text])
        .output()
        .unwrap());

    for (bad, why) in [
        ("[discover]\nno_such_option = 1\n", "no option"),
        ("[frobnicate]\nx = 1\n", "not a subcommand"),
        ("colour = 'red'\n", "no subcommand has"),
        ("[discover\n", "not valid TOML"),
    ] {
        std::fs::write(&config, bad).unwrap();
        let output = kn()
            .args([
                "--config",
                &config_text,
                "discover",
                "--relations",
                "P36",
                "--out",
                "x",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(why),
            "{bad}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = kn()
        .args(["--config", "/nonexistent.toml", "discover"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn verbosity_flags_choose_what_goes_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = kn()
        .args(["-q"])
        .args(discover_args(&dir.path().join("a"), &[]))
        .output()
        .unwrap();
    ok(&quiet);
    assert!(
        quiet.stderr.is_empty(),
        "-q printed: {}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let normal = kn()
        .args(discover_args(&dir.path().join("b"), &[]))
        .output()
        .unwrap();
    let normal_text = String::from_utf8_lossy(&normal.stderr);
    assert!(
        normal_text.contains("kn discover: [1/"),
        "no progress lines: {normal_text}"
    );
    assert!(!normal_text.contains("kn load:"));
    let verbose = kn()
        .args(["-v"])
        .args(discover_args(&dir.path().join("c"), &[]))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verbose.stderr).contains("kn load:"),
        "-v shows model loading"
    );
    assert!(
        normal.stdout.is_empty() && quiet.stdout.is_empty(),
        "discover prints results on stdout only with --json"
    );
    let json = kn()
        .args(discover_args(&dir.path().join("b"), &["--json"]))
        .output()
        .unwrap();
    ok(&json);
    let stats: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("--json prints the statistics");
    assert_eq!(stats["summary"]["facts"], 6);
    assert_eq!(
        kn().args(["-q", "-v"])
            .args(discover_args(&dir.path().join("d"), &[]))
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn score_matrices_are_saved_per_relation_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(&kn()
        .args(discover_args(&out, &["--save-scores", "2"]))
        .output()
        .unwrap());
    let mut saved: Vec<String> = std::fs::read_dir(out.join("scores"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    saved.sort();
    let facts = whole_lines(&out);
    let mut expected: Vec<String> = ["P1376", "P36"]
        .iter()
        .flat_map(|r| {
            facts
                .iter()
                .filter(move |f| f.starts_with(&format!("{r}:")))
                .take(2)
        })
        .map(|f| format!("{}.npy", f.replace(':', "_")))
        .collect();
    expected.sort();
    assert_eq!(saved, expected);
    // A .npy of float32, layers x FFN width (the tiny Llama: all its layers).
    let bytes = std::fs::read(out.join("scores").join(&saved[0])).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header = String::from_utf8_lossy(&bytes[10..128.min(bytes.len())]).to_string();
    assert!(header.contains("'descr': '<f4'"), "{header}");

    // Shards each save their own; the merge gathers them.
    for i in 0..2 {
        ok(&kn()
            .args(discover_args(
                &dir.path().join(format!("s{i}")),
                &["--shard", &format!("{i}/2")],
            ))
            .output()
            .unwrap());
    }
    let merged = dir.path().join("merged");
    let shard_dirs: Vec<String> = (0..2)
        .map(|i| dir.path().join(format!("s{i}")).display().to_string())
        .collect();
    ok(&kn()
        .args([
            "merge",
            "--out",
            &merged.display().to_string(),
            &shard_dirs[0],
            &shard_dirs[1],
        ])
        .output()
        .unwrap());
    let count = |d: &Path| {
        std::fs::read_dir(d.join("scores"))
            .map(|e| e.count())
            .unwrap_or(0)
    };
    assert_eq!(
        count(&merged),
        count(&dir.path().join("s0")) + count(&dir.path().join("s1"))
    );
    assert!(count(&merged) >= 2);
}
