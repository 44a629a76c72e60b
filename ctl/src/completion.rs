//! Shell completion: clap_complete's static script, and for bash and zsh a hook in front of it
//! that completes ids (certificates, CA certificates, APIs, hostnames, subscriptions, named
//! values) by running the hidden `gatehousectl __complete KIND`, which asks the control plane,
//! and context names, read from the config file.
//!
//! Which words hold which kind of id is read from the command tree when the script is made, so
//! the scripts follow the verbs as they change. clap_complete's dynamic completion would do the
//! same from inside the binary, but is still behind its `unstable-dynamic` feature.

use std::io::Write;

use clap::{Command, CommandFactory, ValueEnum};
use clap_complete::Shell;

/// A kind of id the completion scripts offer (`__complete KIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdKind {
    // No doc comments on the values: clap would show them in --help.
    Cert,
    Ca,
    Api,
    Hostname,
    Subscription,
    Nv,
    Context,
}

/// Flags whose value is an id, and its kind (`hostname put --cert`, `api put --ca`, ...).
const ID_FLAGS: [(&str, IdKind); 7] = [
    ("--client-cert", IdKind::Cert),
    ("--cert", IdKind::Cert),
    ("--ca", IdKind::Ca),
    ("--client-ca", IdKind::Ca),
    ("--api", IdKind::Api),
    ("--host", IdKind::Hostname),
    ("--context", IdKind::Context),
];

/// Flags that choose the control plane, passed on to `__complete` so that ids come from the
/// control plane the command line names.
const CONNECTION_FLAGS: [&str; 4] = ["--server", "--ca-file", "--token-file", "--context"];

/// The completion script for `shell`, on stdout.
pub fn print_script(shell: Shell) -> anyhow::Result<()> {
    let script = script(shell);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(script.as_bytes()).and_then(|()| stdout.flush()) {
        // `gatehousectl completions bash | head` is not a failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// The completion script for `shell`: clap_complete's, with the id hook for bash and zsh.
pub fn script(shell: Shell) -> String {
    let mut generated = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), "gatehousectl", &mut generated);
    let generated = String::from_utf8(generated).expect("clap_complete writes UTF-8");
    let hook = |template: &str| Hook::of(&crate::Cli::command()).fill(template);
    match shell {
        // After clap's script: the hook calls its _gatehousectl, then takes over the registration.
        Shell::Bash => format!("{generated}\n{}", hook(BASH_HOOK)),
        // zsh runs the file's last lines when the function is first autoloaded, so the hook
        // must be defined before them: clap's function is renamed and the hook takes its name.
        Shell::Zsh => {
            let (functions, registration) = generated
                .rsplit_once(ZSH_REGISTRATION)
                .map(|(functions, rest)| (functions, format!("{ZSH_REGISTRATION}{rest}")))
                .expect("clap_complete's zsh script ends by registering _gatehousectl");
            let functions = functions.replacen("\n_gatehousectl() {\n", "\n_gatehousectl_clap() {\n", 1);
            format!("{functions}{}\n{registration}", hook(ZSH_HOOK))
        }
        _ => generated,
    }
}

/// The command tree without its hidden nouns (`__complete`), which clap_complete would offer.
fn visible_command() -> Command {
    let cli = crate::Cli::command();
    Command::new("gatehousectl")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|noun| !noun.is_hide_set()).cloned())
}

/// How clap_complete's zsh script starts its closing lines.
const ZSH_REGISTRATION: &str = "if [ \"$funcstack[1]\" = \"_gatehousectl\" ]; then";

/// What the hooks need to know about the command tree, as shell `case` patterns.
struct Hook {
    /// `"cert show"|"cert delete") kind=cert ;;` lines: verbs whose first argument is an id.
    id_verbs: String,
    /// `--client-cert|--cert) kind=cert ;;` lines: flags whose value is an id.
    id_flags: String,
    /// `--path|--service-url|...|-o`: every option that takes a value (so its value is not
    /// taken for an argument).
    value_options: String,
}

// === impl Hook ===

impl Hook {
    /// The patterns for the tree `cli`.
    fn of(cli: &Command) -> Self {
        let kinds = IdKind::value_variants();
        let mut id_verbs = String::new();
        for kind in kinds {
            let name = kind_name(*kind);
            let verbs: Vec<String> = cli
                .get_subcommands()
                .filter(|noun| noun.get_name() == noun_of(*kind))
                .flat_map(|noun| {
                    let nouns: Vec<&str> = std::iter::once(noun.get_name()).chain(noun.get_all_aliases()).collect();
                    noun.get_subcommands()
                        // A new name is not completed from the existing ones.
                        .filter(|verb| verb.get_name() != "create" && verb.get_positionals().next().is_some())
                        .flat_map(move |verb| nouns.clone().into_iter().map(move |noun| (noun, verb.get_name())))
                })
                .map(|(noun, verb)| format!("\"{noun} {verb}\""))
                .collect();
            if !verbs.is_empty() {
                id_verbs.push_str(&format!("                    {}) kind={name} ;;\n", verbs.join("|")));
            }
        }
        let mut id_flags = String::new();
        for kind in kinds {
            let flags: Vec<&str> = ID_FLAGS.iter().filter(|(_, k)| k == kind).map(|(flag, _)| *flag).collect();
            if !flags.is_empty() {
                id_flags.push_str(&format!("        {}) kind={} ;;\n", flags.join("|"), kind_name(*kind)));
            }
        }
        let mut value_options = std::collections::BTreeSet::new();
        collect_value_options(cli, &mut value_options);
        // The connection flags have a pattern of their own, tried first.
        value_options.retain(|option| !CONNECTION_FLAGS.contains(&option.as_str()));
        let value_options = value_options.into_iter().collect::<Vec<_>>().join("|");
        Self { id_verbs, id_flags, value_options }
    }

    /// `template` with its `@PLACEHOLDERS@` replaced by the patterns.
    fn fill(&self, template: &str) -> String {
        template
            .replace("@WORD_SCAN@\n", WORD_SCAN)
            .replace("@ID_VERBS@\n", &self.id_verbs)
            .replace("@ID_FLAGS@\n", &self.id_flags)
            .replace("@CONNECTION_FLAGS@", &CONNECTION_FLAGS.join("|"))
            .replace(
                "@CONNECTION_FLAGS_EQ@",
                &CONNECTION_FLAGS.iter().map(|f| format!("{f}=*")).collect::<Vec<_>>().join("|"),
            )
            .replace("@VALUE_OPTIONS@", &self.value_options)
    }
}

/// The kind's name on the command line (`cert`, `nv`, ...), which is also its noun's.
fn kind_name(kind: IdKind) -> String {
    kind.to_possible_value().expect("no kind is skipped").get_name().to_string()
}

/// The noun whose verbs take this kind of id as their first argument.
fn noun_of(kind: IdKind) -> &'static str {
    match kind {
        IdKind::Context => "config",
        IdKind::Cert => "cert",
        IdKind::Ca => "ca",
        IdKind::Api => "api",
        IdKind::Hostname => "hostname",
        IdKind::Subscription => "subscription",
        IdKind::Nv => "nv",
    }
}

/// Every `--long` and `-s` form of an option that takes a value, anywhere in the tree.
fn collect_value_options(command: &Command, into: &mut std::collections::BTreeSet<String>) {
    for arg in command.get_arguments().filter(|a| !a.is_positional() && a.get_action().takes_values()) {
        into.extend(arg.get_long_and_visible_aliases().into_iter().flatten().map(|long| format!("--{long}")));
        into.extend(arg.get_short_and_visible_aliases().into_iter().flatten().map(|short| format!("-{short}")));
    }
    for sub in command.get_subcommands() {
        collect_value_options(sub, into);
    }
}

/// The bash hook. It splits the line itself (on white space only): bash's COMP_WORDS also
/// splits at ':' and '=', which cuts a --server URL into pieces.
/// The body both hooks share (bash and zsh read it alike): the loop over the words before the
/// cursor, picking out the connection flags, the noun, the verb and how many arguments follow,
/// then the choice of the id kind wanted at the cursor (`kind`), from the flag before it or the
/// verb's first argument.
const WORD_SCAN: &str = r#"        word="${words[i]}"
        case "$word" in
            @CONNECTION_FLAGS@) connection+=("$word" "${words[i+1]}"); i+=1 ;;
            @CONNECTION_FLAGS_EQ@) connection+=("$word") ;;
            @VALUE_OPTIONS@) i+=1 ;;
            -*) ;;
            *)
                if [[ -z "$noun" ]]; then noun="$word"
                elif [[ -z "$verb" ]]; then verb="$word"
                else arguments+=1
                fi ;;
        esac
    done
    case "$prev" in
@ID_FLAGS@
        @CONNECTION_FLAGS@|@VALUE_OPTIONS@) ;;
        *)
            if [[ $arguments -eq 0 && "$cur" != -* ]]; then
                case "$noun $verb" in
@ID_VERBS@
                esac
            fi ;;
    esac
"#;

const BASH_HOOK: &str = r#"# Ids from the control plane, for the words that name one: `gatehousectl __complete KIND`
# prints them (nothing on any error, within 2 seconds). Everything else: _gatehousectl above.
_gatehousectl_with_ids() {
    local line="${COMP_LINE:0:COMP_POINT}" cur="" prev="" noun="" verb="" kind="" word id
    local -i i arguments=0
    local -a words connection=()
    read -r -a words <<< "$line"
    if [[ "$line" != *[[:space:]] && ${#words[@]} -gt 1 ]]; then
        cur="${words[${#words[@]}-1]}"
        unset "words[${#words[@]}-1]"
    fi
    prev="${words[${#words[@]}-1]}"
    for (( i = 1; i < ${#words[@]}; i++ )); do
@WORD_SCAN@
    if [[ -z "$kind" ]]; then
        _gatehousectl "$@"
        return
    fi
    COMPREPLY=()
    while IFS= read -r id; do
        if [[ -n "$id" && "$id" == "$cur"* ]]; then
            printf -v id '%q' "$id"
            COMPREPLY+=("$id")
        fi
    done < <("${COMP_WORDS[0]}" ${connection[@]+"${connection[@]}"} __complete "$kind" 2>/dev/null)
    # No file names in place of ids.
    compopt +o default +o bashdefault 2>/dev/null
    return 0
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _gatehousectl_with_ids -o nosort -o bashdefault -o default gatehousectl
else
    complete -F _gatehousectl_with_ids -o bashdefault -o default gatehousectl
fi
"#;

/// The zsh hook; `words` and `CURRENT` are zsh's own, already split as the shell does.
const ZSH_HOOK: &str = r#"# Ids from the control plane, for the words that name one: `gatehousectl __complete KIND`
# prints them (nothing on any error, within 2 seconds). Everything else: _gatehousectl_clap.
_gatehousectl() {
    local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" noun="" verb="" kind="" word
    local -i i arguments=0
    local -a connection ids
    for (( i = 2; i < CURRENT; i++ )); do
@WORD_SCAN@
    if [[ -z "$kind" ]]; then
        _gatehousectl_clap "$@"
        return
    fi
    ids=(${(f)"$("${words[1]}" "${connection[@]}" __complete "$kind" 2>/dev/null)"})
    compadd -a ids
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_script_completes_ids_after_id_verbs_and_id_flags() {
        let script = script(Shell::Bash);
        assert!(script.contains("complete -F _gatehousectl_with_ids"), "{script}");
        assert!(!script.contains("__complete)"), "the hidden noun is not offered: {script}");
        assert!(script.contains("\"cert show\"|"), "{script}");
        assert!(script.contains("\"nv show\"|") && script.contains("\"named-value show\""), "{script}");
        assert!(script.contains("--client-cert|--cert) kind=cert ;;"), "{script}");
        assert!(!script.contains("\"subscription create\""), "new names are not completed: {script}");
        assert!(
            !script.contains("@ID_") && !script.contains("@VALUE_") && !script.contains("@CONNECTION_"),
            "{script}"
        );
        assert!(
            script.contains("\"config use-context\"|") && script.contains("--context) kind=context ;;"),
            "{script}"
        );
        // Options that take a value, so their value is not counted as the id.
        assert!(script.contains("|--service-url|") && script.contains("|-o"), "{script}");
    }

    #[test]
    fn zsh_script_wraps_clap_function_before_registering() {
        let script = script(Shell::Zsh);
        let clap = script.find("\n_gatehousectl_clap() {\n").expect("clap's function renamed");
        let hook = script.find("\n_gatehousectl() {\n").expect("the hook");
        let registration = script.find(ZSH_REGISTRATION).unwrap();
        assert!(clap < hook && hook < registration);
        assert_eq!(script.matches("\n_gatehousectl() {\n").count(), 1);
        assert!(!script.contains("@ID_") && !script.contains("@VALUE_") && !script.contains("@CONNECTION_"));
    }

    #[test]
    fn every_id_flag_and_kind_exists_in_the_command_tree() {
        let cli = crate::Cli::command();
        let mut options = std::collections::BTreeSet::new();
        collect_value_options(&cli, &mut options);
        for (flag, _) in ID_FLAGS {
            assert!(options.contains(flag), "{flag} is no option of gatehousectl");
        }
        for kind in IdKind::value_variants() {
            let noun = noun_of(*kind);
            assert!(cli.get_subcommands().any(|n| n.get_name() == noun), "no noun {noun}");
        }
    }
}
