//! The policy file: TOML read into a shape that keeps where each value was written, then
//! checked as a whole, so that an administrator learns every bad line at once (a TOML
//! syntax error or an unknown or missing field stops the reading at that line; the
//! checks of the values after it report all they find).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    ops::Range,
    path::Path,
};

use serde::Deserialize;
use toml::Spanned;

use super::{ANY_ROLE, DEFAULT_SUPERVISED_TITLE, Policy, Roles, Supervision};

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read the policy file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read and is wrong, at each of these lines.
    #[error("the policy file {path} is invalid:{}", list(.problems))]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, line by line.
        problems: Vec<Problem>,
    },
}

/// One thing wrong in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its line, from 1.
    pub line: usize,
    /// The field and what is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|problem| format!("\n  {problem}")).collect()
}

/// Reads and validates the policy file at `path`.
pub fn read(path: &Path) -> Result<Policy, PolicyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: shown.clone(), source })?;
    parse(&text).map_err(|problems| PolicyError::Invalid { path: shown, problems })
}

/// Parses and validates a policy; every problem found, in line order, when it is bad.
pub fn parse(text: &str) -> Result<Policy, Vec<Problem>> {
    let file: PolicyFile = toml::from_str(text).map_err(|error| {
        let line = error.span().map_or(1, |span| line_of(text, &span));
        vec![Problem { line, message: error.message().trim().to_owned() }]
    })?;
    let mut check = Checker { text, problems: Vec::new() };
    let direct = file.direct.map(|rules| {
        rules
            .into_iter()
            .filter_map(|(opener, allowed)| {
                let opener_ok = check.role(&opener, "[direct]", true);
                let allowed = check.roles(&allowed, &format!("[direct] {}", opener.get_ref()), true);
                opener_ok.then(|| (opener.into_inner(), allowed))
            })
            .collect::<BTreeMap<_, _>>()
    });
    let groups = file.groups.map(|groups| check.roles(&groups.create, "[groups] create", true));
    let supervised = file.supervised.map(|supervised| check.supervision(supervised));
    let mut problems = check.problems;
    if !problems.is_empty() {
        problems.sort_by_key(|problem| problem.line);
        return Err(problems);
    }
    Ok(Policy { direct, groups, supervised })
}

/// A list of role names as written, each where it was written.
type RoleList = Spanned<Vec<Spanned<String>>>;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Opener's role → the roles they may open direct chats with.
    direct: Option<BTreeMap<Spanned<String>, RoleList>>,
    groups: Option<GroupsFile>,
    supervised: Option<SupervisedFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    create: RoleList,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupervisedFile {
    students: RoleList,
    staff: RoleList,
    supervisor: Spanned<String>,
    title: Option<Spanned<String>>,
}

/// Collects problems while turning the file's values into the policy's.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, span: &Range<usize>, message: String) {
        self.problems.push(Problem { line: line_of(self.text, span), message });
    }

    /// True when `role` is a role name (or `"*"`, where `star` allows it).
    fn role(&mut self, role: &Spanned<String>, field: &str, star: bool) -> bool {
        let name = role.get_ref();
        if star && name == ANY_ROLE {
            return true;
        }
        let well_formed = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !well_formed {
            let star = if star { " or \"*\"" } else { "" };
            self.problem(
                &role.span(),
                format!("{field}: {name:?} is not a role name (1 to 64 of a-z, 0-9, '-', '_'){star}"),
            );
        }
        well_formed
    }

    /// A list of roles; `"*"` (where `star` allows it) stands alone.
    fn roles(&mut self, list: &RoleList, field: &str, star: bool) -> Roles {
        let mut names = BTreeSet::new();
        for role in list.get_ref() {
            if self.role(role, field, star) && !names.insert(role.get_ref().clone()) {
                self.problem(&role.span(), format!("{field}: {:?} is listed twice", role.get_ref()));
            }
        }
        if names.contains(ANY_ROLE) {
            if names.len() > 1 {
                self.problem(&list.span(), format!("{field}: \"*\" already means every role; list it alone"));
            }
            return Roles::Any;
        }
        Roles::Listed(names)
    }

    fn supervision(&mut self, supervised: SupervisedFile) -> Supervision {
        let SupervisedFile { students, staff, supervisor, title } = supervised;
        let mut side = |list: &RoleList, field: &str| {
            let roles = match self.roles(list, field, false) {
                Roles::Listed(roles) => roles,
                Roles::Any => BTreeSet::new(),
            };
            if list.get_ref().is_empty() {
                self.problem(&list.span(), format!("{field}: name at least one role"));
            }
            roles
        };
        let students_set = side(&students, "[supervised] students");
        let staff_set = side(&staff, "[supervised] staff");
        for both in students_set.intersection(&staff_set) {
            self.problem(&staff.span(), format!("[supervised] staff: {both:?} is also in students"));
        }
        if !chat_nats::subjects::is_valid_id(supervisor.get_ref()) {
            self.problem(
                &supervisor.span(),
                format!(
                    "[supervised] supervisor: {:?} is not a user id (1 to 64 of A-Z, a-z, 0-9, '-', '_')",
                    supervisor.get_ref()
                ),
            );
        }
        let title = match title {
            Some(title) => {
                if let Err(reason) = chat_nats::limits::check_title(title.get_ref()) {
                    self.problem(&title.span(), format!("[supervised] title: {reason}"));
                }
                title.into_inner()
            }
            None => DEFAULT_SUPERVISED_TITLE.to_owned(),
        };
        Supervision { students: students_set, staff: staff_set, supervisor: supervisor.into_inner(), title }
    }
}

/// The line (from 1) where `span` starts.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    let start = span.start.min(text.len());
    text.as_bytes()[..start].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(problems) => problems,
            Ok(policy) => panic!("accepted: {policy:?}"),
        }
    }

    fn policy(text: &str) -> Policy {
        parse(text).unwrap_or_else(|problems| panic!("refused: {}", list(&problems)))
    }

    #[test]
    fn the_documented_and_deployed_examples_are_valid() {
        let example = policy(include_str!("../../../docs/policy.example.toml"));
        assert!(example.direct.is_some() && example.groups.is_some() && example.supervised.is_some());
        // Read, not included: the image's build copies no deploy/ files.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/k8s/components/school-policy/policy.toml");
        let deployed = policy(&std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}")));
        assert!(deployed.direct.is_some() && deployed.groups.is_some() && deployed.supervised.is_some());
    }

    #[test]
    fn an_empty_file_restricts_nothing() {
        assert_eq!(policy(""), Policy::default());
        assert_eq!(policy("# nothing yet\n"), Policy::default());
    }

    #[test]
    fn a_full_file_becomes_its_policy() {
        let parsed = policy(
            r#"
[direct]
student = ["teacher"]
teacher = ["*"]

[groups]
create = ["teacher", "admin"]

[supervised]
students = ["student"]
staff = ["teacher"]
supervisor = "counsellor-1"
"#,
        );
        let direct = parsed.direct.unwrap_or_default();
        assert_eq!(direct.get("teacher"), Some(&Roles::Any));
        assert_eq!(direct.get("student"), Some(&Roles::Listed(["teacher".to_owned()].into())));
        assert_eq!(parsed.groups, Some(Roles::Listed(["admin".to_owned(), "teacher".to_owned()].into())));
        let supervision = parsed.supervised.unwrap_or_else(|| panic!("no supervision"));
        assert_eq!((supervision.supervisor.as_str(), supervision.title.as_str()), ("counsellor-1", "Supervised chat"));
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let found = problems("[groups]\ncreate = [teacher]\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 2, "{found:?}");
    }

    #[test]
    fn unknown_and_missing_fields_name_their_line() {
        let unknown = problems("[groups]\ncreate = []\n\n[grups]\ncreate = []\n");
        assert_eq!(unknown[0].line, 4, "{unknown:?}");
        assert!(unknown[0].message.contains("grups"), "{unknown:?}");

        let typo = problems("[groups]\ncrate = [\"teacher\"]\n");
        assert_eq!(typo[0].line, 2, "{typo:?}");
        assert!(typo[0].message.contains("crate"), "{typo:?}");

        let missing = problems("[supervised]\nstudents = [\"student\"]\nstaff = [\"teacher\"]\n");
        assert!(missing[0].message.contains("supervisor"), "{missing:?}");

        let wrong_type = problems("[groups]\ncreate = \"teacher\"\n");
        assert_eq!(wrong_type[0].line, 2, "{wrong_type:?}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_line_and_field() {
        let found = problems(
            r#"[direct]
Student = ["teacher"]
teacher = ["*", "student"]
admin = ["teacher", "teacher"]

[groups]
create = ["teacher", "head teacher"]

[supervised]
students = ["student", "*"]
staff = ["student"]
supervisor = "not an id"
title = ""
"#,
        );
        let seen: Vec<(usize, &str)> = found.iter().map(|p| (p.line, p.message.as_str())).collect();
        let expect = [
            (2, "[direct]: \"Student\" is not a role name"),
            (3, "[direct] teacher: \"*\" already means every role"),
            (4, "[direct] admin: \"teacher\" is listed twice"),
            (7, "[groups] create: \"head teacher\" is not a role name"),
            (10, "[supervised] students: \"*\" is not a role name"),
            (11, "[supervised] staff: \"student\" is also in students"),
            (12, "[supervised] supervisor: \"not an id\" is not a user id"),
            (13, "[supervised] title: title must not be empty"),
        ];
        assert_eq!(found.len(), expect.len(), "{seen:#?}");
        for ((line, message), problem) in expect.iter().zip(&found) {
            assert_eq!(problem.line, *line, "{seen:#?}");
            assert!(problem.message.starts_with(message), "{problem} should start with {message}");
        }
    }

    #[test]
    fn supervision_needs_both_sides() {
        let found = problems("[supervised]\nstudents = []\nstaff = [\"teacher\"]\nsupervisor = \"c1\"\n");
        assert_eq!((found.len(), found[0].line), (1, 2), "{found:?}");
        assert!(found[0].message.contains("students: name at least one role"), "{found:?}");
    }

    #[test]
    fn the_error_lists_every_problem_with_the_file() {
        let error = PolicyError::Invalid {
            path: "/etc/chat/policy.toml".into(),
            problems: vec![Problem { line: 2, message: "a".into() }, Problem { line: 5, message: "b".into() }],
        };
        assert_eq!(error.to_string(), "the policy file /etc/chat/policy.toml is invalid:\n  line 2: a\n  line 5: b");
    }

    #[test]
    fn a_missing_file_is_named() {
        let missing = Path::new("/nonexistent/chat-policy.toml");
        let error = read(missing).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error.starts_with("cannot read the policy file /nonexistent/chat-policy.toml"), "{error}");
    }
}
