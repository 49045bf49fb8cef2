//! `kn report` end to end on the tiny Llama: discover (with a saved score matrix), suppress and
//! erase into one run directory, then the report in both formats, its JSON summary, and bad input.

mod common;
use common::{fixture, kn, ok, tiny_discover_args};

#[test]
fn a_run_directory_becomes_a_report_with_figures() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_text = run.display().to_string();
    ok(
        &kn(&tiny_discover_args(
            &run,
            &["--share", "0.3", "--threshold", "0.1"],
        )),
        "discover",
    );
    ok(
        &kn(&[
            "suppress",
            "--model",
            &model,
            "--neurons",
            &run_text,
            "--batch-size",
            "4",
        ]),
        "suppress",
    );

    // Before erase/edit/activations were run, their sections are reported missing.
    let output = kn(&["report", &run_text, "--json"]);
    ok(&output, "report");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let missing: Vec<&str> = summary["sections_missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for section in ["activations", "edit", "erase"] {
        assert!(
            missing.contains(&section),
            "{section} should be missing: {missing:?}"
        );
    }
    assert!(
        !missing.contains(&"suppression") && !missing.contains(&"heatmap"),
        "{missing:?}"
    );
    assert_eq!(summary["headline"]["facts"], 6);
    let with_neurons = std::fs::read_to_string(run.join("neurons.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"relation\":\"P36\"") && !l.contains("\"neurons\":[]"))
        .count();
    assert!(
        with_neurons > 0,
        "the erase below needs P36 facts with knowledge neurons"
    );

    let erase = run.join("erase-P36.json");
    let output = kn(&[
        "erase",
        "--model",
        &model,
        "--neurons",
        &run_text,
        "--relation",
        "P36",
        "--top",
        "5",
        "--json",
        "--out",
        &erase.display().to_string(),
    ]);
    ok(&output, "erase");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&erase).unwrap()).unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(written, printed, "--out writes what --json prints");

    let output = kn(&["report", &run_text]);
    ok(&output, "report");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Report (HTML):") && text.contains("Report (Markdown):"),
        "{text}"
    );
    let html = std::fs::read_to_string(run.join("report/report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 4,
        "the HTML inlines its figures"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "the HTML is self-contained"
    );
    let markdown = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(markdown.contains("figures/") && markdown.contains("P36"));

    // Only HTML, elsewhere.
    let elsewhere = dir.path().join("elsewhere");
    ok(
        &kn(&[
            "report",
            &run_text,
            "--format",
            "html",
            "--out",
            &elsewhere.display().to_string(),
        ]),
        "report --format html",
    );
    assert!(elsewhere.join("report.html").exists() && !elsewhere.join("report.md").exists());

    // Bad input: not a run, an unknown fact, a malformed input file.
    assert_eq!(
        kn(&["report", &dir.path().display().to_string()])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        kn(&["report", &run_text, "--fact", "P36:999999"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        kn(&["report", &run_text, "--format", "pdf"]).status.code(),
        Some(2)
    );
    std::fs::write(run.join("suppression.json"), "{ not json").unwrap();
    let output = kn(&["report", &run_text]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("suppression.json"));
}
