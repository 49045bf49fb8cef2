//! `--config FILE`: a TOML file that holds options of one or several subcommands.
//!
//! ```toml
//! # Top-level keys apply to every subcommand that has the option (here: all that load a model).
//! model = "default"
//! threads = 2
//! seed = 2022
//!
//! [discover]
//! relations = ["P36", "P176"]   # arrays are joined with commas
//! facts-per-relation = 8        # `facts_per_relation` works too
//! out = "runs/main"
//!
//! [suppress]
//! neurons = "runs/main"
//! ```
//!
//! The file is turned into command-line options inserted right after the subcommand, so clap
//! checks them exactly like typed options; an option given on the command line wins over the
//! file. A key that no subcommand knows, a table that is not a subcommand, or a key of the
//! running subcommand's table that it does not have is bad input. Booleans become a bare flag
//! (true) or nothing (false) for switches, `--key true|false` for options that take a value.
//! Paths are taken as written (relative to the working directory, like typed options).

use crate::exit::CliError;
use clap::{ArgAction, Command};
use std::ffi::OsString;
use std::path::Path;

/// Expands `--config FILE` (anywhere in `args`) into the subcommand's options; `args` without
/// `--config` or without a subcommand are returned unchanged.
pub fn expand(args: Vec<OsString>, command: &Command) -> Result<Vec<OsString>, CliError> {
    let Some(config_path) = config_path(&args) else {
        return Ok(args);
    };
    let Some((position, name)) = subcommand_position(&args, command) else {
        return Ok(args);
    };
    let Some(subcommand) = command.find_subcommand(&name) else {
        return Ok(args);
    };
    // Capped: a configuration is small, and /dev/zero or a FIFO must not grow memory forever.
    let text = kn_schema::read_capped_text(
        &config_path,
        kn_schema::CONFIG_FILE_LIMIT,
        "configuration file",
    )
    .map_err(|e| CliError::BadInput(format!("--config {e}")))?;
    let table: toml::Table = text.parse().map_err(|e| {
        CliError::BadInput(format!(
            "--config {}: not valid TOML: {e}",
            config_path.display()
        ))
    })?;
    let given: Vec<String> = args[position + 1..]
        .iter()
        .filter_map(|a| a.to_str())
        .map(str::to_string)
        .collect();
    let inserted = options_for(&table, command, subcommand, &given)
        .map_err(|why| CliError::BadInput(format!("--config {}: {why}", config_path.display())))?;
    let mut expanded = args[..=position].to_vec();
    expanded.extend(inserted.into_iter().map(OsString::from));
    expanded.extend_from_slice(&args[position + 1..]);
    Ok(expanded)
}

fn config_path(args: &[OsString]) -> Option<std::path::PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_str()?;
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return iter.next().map(|p| Path::new(p).to_path_buf());
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(Path::new(path).to_path_buf());
        }
    }
    None
}

/// The index and name of the subcommand token: the first argument naming a subcommand that is
/// not the value of `--config`.
fn subcommand_position(args: &[OsString], command: &Command) -> Option<(usize, String)> {
    let mut skip_next = false;
    for (index, arg) in args.iter().enumerate().skip(1) {
        let arg = arg.to_str()?;
        if skip_next {
            skip_next = false;
            continue;
        }
        if arg == "--config" {
            skip_next = true;
            continue;
        }
        if arg.starts_with('-') {
            continue;
        }
        return command
            .find_subcommand(arg)
            .map(|s| (index, s.get_name().to_string()));
    }
    None
}

/// How a long option takes its value.
enum OptionShape {
    Switch,
    Value,
}

fn option_shape(command: &Command, long: &str) -> Option<OptionShape> {
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    Some(match arg.get_action() {
        ArgAction::SetTrue | ArgAction::Count => OptionShape::Switch,
        _ => OptionShape::Value,
    })
}

fn options_for(
    table: &toml::Table,
    root: &Command,
    subcommand: &Command,
    given: &[String],
) -> Result<Vec<String>, String> {
    let name = subcommand.get_name();
    let mut chosen: Vec<(String, &toml::Value)> = Vec::new();
    for (key, value) in table {
        if let toml::Value::Table(section) = value {
            let Some(section_command) = root.find_subcommand(key) else {
                return Err(format!(
                    "[{key}] is not a subcommand (they are: {})",
                    subcommand_names(root)
                ));
            };
            for (option, value) in section {
                let long = option.replace('_', "-");
                if option_shape(section_command, &long).is_none() {
                    return Err(format!(
                        "[{key}] {option}: `kn {key}` has no option --{long} (it has: {})",
                        long_options(section_command)
                    ));
                }
                if section_command.get_name() == name {
                    chosen.retain(|(k, _)| *k != long);
                    chosen.push((long, value));
                }
            }
        } else {
            let long = key.replace('_', "-");
            if option_shape(subcommand, &long).is_some() {
                if !chosen.iter().any(|(k, _)| *k == long) {
                    chosen.push((long, value));
                }
            } else if !root
                .get_subcommands()
                .any(|s| option_shape(s, &long).is_some())
            {
                return Err(format!("{key}: no subcommand has an option --{long}"));
            }
        }
    }
    let mut options = Vec::new();
    for (long, value) in chosen {
        let flag = format!("--{long}");
        if given
            .iter()
            .any(|g| *g == flag || g.starts_with(&format!("{flag}=")))
        {
            continue; // the command line wins
        }
        let shape = option_shape(subcommand, &long).ok_or_else(|| format!("--{long} vanished"))?;
        match (shape, value) {
            (OptionShape::Switch, toml::Value::Boolean(true)) => options.push(flag),
            (OptionShape::Switch, toml::Value::Boolean(false)) => {}
            (OptionShape::Switch, other) => {
                return Err(format!("{long}: a switch takes true or false, not {other}"));
            }
            (OptionShape::Value, value) => {
                options.push(flag);
                options.push(scalar_text(&long, value)?);
            }
        }
    }
    Ok(options)
}

fn scalar_text(key: &str, value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| scalar_text(key, item))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => return Err(format!("{key}: unsupported value {other}")),
    })
}

fn subcommand_names(root: &Command) -> String {
    root.get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn long_options(command: &Command) -> String {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "help")
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;
    use clap::{Args, Parser, Subcommand};

    #[derive(Debug, Parser)]
    struct Test {
        #[arg(long, global = true)]
        config: Option<String>,
        #[command(subcommand)]
        command: Sub,
    }
    #[derive(Debug, Subcommand)]
    enum Sub {
        Run(RunArgs),
        Other(OtherArgs),
    }
    #[derive(Debug, Args)]
    struct RunArgs {
        #[arg(long, default_value = "default")]
        model: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        relations: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        random_control: bool,
    }
    #[derive(Debug, Args)]
    struct OtherArgs {
        #[arg(long)]
        out: Option<String>,
    }

    fn run(config: &str, argv: &[&str]) -> Result<Vec<String>, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kn.toml");
        std::fs::write(&path, config).unwrap();
        let mut args: Vec<OsString> = vec!["kn".into()];
        args.extend(argv.iter().map(OsString::from));
        args.push("--config".into());
        args.push(path.clone().into());
        let command = <Test as clap::CommandFactory>::command();
        let expanded = expand(args, &command)?;
        let path = path.display().to_string();
        Ok(expanded
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .filter(|a| *a != path && a != "--config")
            .collect())
    }

    #[test]
    fn sections_and_top_level_keys_become_options() {
        let args = run(
            "model = 'm.gguf'\nseed = 7\n[run]\nrelations = ['P36', 'P19']\njson = true\nrandom_control = false\n[other]\nout = 'x'\n",
            &["run"],
        )
        .unwrap();
        // Options in the file's key order (sorted), each with its value.
        assert_eq!(args[..2], ["kn", "run"]);
        let pairs: Vec<String> = args[2..].iter().cloned().collect();
        for expected in [
            &["--model", "m.gguf"][..],
            &["--seed", "7"],
            &["--relations", "P36,P19"],
            &["--random-control", "false"],
        ] {
            assert!(
                pairs.windows(2).any(|w| w == expected),
                "{expected:?} missing from {pairs:?}"
            );
        }
        assert!(pairs.contains(&"--json".to_string()) && !pairs.contains(&"--out".to_string()));
        let parsed = Test::try_parse_from(&args).unwrap();
        let Sub::Run(run_args) = parsed.command else {
            panic!("wrong subcommand")
        };
        assert_eq!(
            (run_args.seed, run_args.random_control, run_args.json),
            (7, false, true)
        );
        assert_eq!(
            (run_args.model.as_str(), run_args.relations.as_deref()),
            ("m.gguf", Some("P36,P19"))
        );
    }

    #[test]
    fn the_command_line_wins_and_sections_override_top_level() {
        let args = run(
            "seed = 1\n[run]\nseed = 2\nmodel = 'a'\n",
            &["run", "--model=b"],
        )
        .unwrap();
        assert_eq!(args, ["kn", "run", "--seed", "2", "--model=b"]);
    }

    #[test]
    fn unknown_keys_and_sections_are_bad_input() {
        for config in [
            "[run]\nsteps = 3\n",
            "[nope]\nx = 1\n",
            "colour = 'red'\n",
            "[run]\njson = 'yes'\n",
            "model = [",
        ] {
            let error = run(config, &["run"]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{config}: {error}");
        }
        // A top-level key another subcommand has is fine.
        assert_eq!(run("out = 'o'\n", &["run"]).unwrap(), ["kn", "run"]);
    }
}
