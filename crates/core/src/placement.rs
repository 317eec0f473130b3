//! Where an app's instances may run: node constraints on the nodes' labels (`disk==ssd`,
//! `datacenter!=dc2`), all of which a node must meet, as Swarm's placement constraints and
//! Kubernetes' node selectors do. Checked when instances are placed: the engine keeps them on
//! a Swarm; a deploy that no node meets is refused.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::node::{NodeLabels, label_key_problem, label_value_problem};
use crate::validate::ValidationErrors;

/// Most constraints one app may have.
pub const MAX_CONSTRAINTS: usize = 16;

/// One condition on a node's labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeConstraint {
    /// The node label it reads.
    pub label: String,
    /// `true`: the label must have `value`; `false`: it must not (a node without the label
    /// meets it).
    pub equal: bool,
    pub value: String,
}

impl NodeConstraint {
    /// Reads `label==value` or `label!=value` (spaces around the operator allowed).
    pub fn parse(text: &str) -> Result<NodeConstraint, String> {
        let (label, equal, value) = if let Some((label, value)) = text.split_once("!=") {
            (label, false, value)
        } else if let Some((label, value)) = text.split_once("==") {
            (label, true, value)
        } else {
            return Err(format!(
                "{text:?} is not LABEL==VALUE or LABEL!=VALUE (e.g. disk==ssd)"
            ));
        };
        let constraint = NodeConstraint {
            label: label.trim().to_string(),
            equal,
            value: value.trim().to_string(),
        };
        match constraint.problem() {
            Some(problem) => Err(format!("{text:?}: {problem}")),
            None => Ok(constraint),
        }
    }

    /// What is wrong with its label or value, if anything.
    fn problem(&self) -> Option<String> {
        label_key_problem(&self.label)
            .or_else(|| label_value_problem(&self.value))
            .or_else(|| {
                self.value
                    .is_empty()
                    .then(|| "give a value after the operator".to_string())
            })
    }

    /// Whether a node with `labels` meets it.
    pub fn met_by(&self, labels: &NodeLabels) -> bool {
        (labels.get(&self.label) == Some(&self.value)) == self.equal
    }
}

impl fmt::Display for NodeConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{}{op}{}", self.label, self.value)
    }
}

/// Whether a node with `labels` meets every one of `constraints`.
pub fn meets_all(constraints: &[NodeConstraint], labels: &NodeLabels) -> bool {
    constraints.iter().all(|c| c.met_by(labels))
}

/// Checks each constraint (a bad one names `<field>[i]`), their number and repeats.
pub fn validate_constraints(
    errors: &mut ValidationErrors,
    field: &str,
    constraints: &[NodeConstraint],
) {
    if constraints.len() > MAX_CONSTRAINTS {
        errors.push(field, format!("at most {MAX_CONSTRAINTS} node constraints"));
    }
    for (i, constraint) in constraints.iter().enumerate() {
        if let Some(problem) = constraint.problem() {
            errors.push(format!("{field}[{i}]"), problem);
        } else if constraints[..i].contains(constraint) {
            errors.push(
                format!("{field}[{i}]"),
                format!("{constraint} is given twice"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn constraints_parse_and_print() {
        // (text, want: label, equal, value — or the start of the error)
        let cases: [(&str, Result<(&str, bool, &str), &str>); 10] = [
            ("disk==ssd", Ok(("disk", true, "ssd"))),
            ("datacenter != dc2", Ok(("datacenter", false, "dc2"))),
            ("zone==eu-west.1", Ok(("zone", true, "eu-west.1"))),
            ("disk=ssd", Err("\"disk=ssd\" is not LABEL==VALUE")),
            ("disk", Err("\"disk\" is not LABEL==VALUE")),
            ("==ssd", Err("\"==ssd\": a label key cannot be empty")),
            ("disk==", Err("\"disk==\": give a value")),
            ("Disk==ssd", Err("\"Disk==ssd\": a label key is lowercase")),
            ("disk==s d", Err("\"disk==s d\": a label value is letters")),
            (
                "node.labels.disk==ssd\"",
                Err("\"node.labels.disk==ssd\\\"\": a label value"),
            ),
        ];
        for (text, want) in cases {
            match (NodeConstraint::parse(text), want) {
                (Ok(got), Ok((label, equal, value))) => {
                    assert_eq!(
                        got,
                        NodeConstraint {
                            label: label.into(),
                            equal,
                            value: value.into()
                        },
                        "{text}"
                    );
                    let printed = got.to_string();
                    assert_eq!(NodeConstraint::parse(&printed), Ok(got), "{text}");
                }
                (Err(error), Err(start)) => assert!(error.starts_with(start), "{text}: {error}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_node_meets_a_constraint_by_its_labels() {
        let ssd_dc1 = labels(&[("disk", "ssd"), ("datacenter", "dc1")]);
        let bare = labels(&[]);
        // (constraint, on ssd_dc1, on a node without labels)
        let cases = [
            ("disk==ssd", true, false),
            ("disk==hdd", false, false),
            ("disk!=hdd", true, true),
            ("disk!=ssd", false, true),
            ("datacenter!=dc2", true, true),
        ];
        for (text, on_labelled, on_bare) in cases {
            let c = NodeConstraint::parse(text).unwrap();
            assert_eq!(c.met_by(&ssd_dc1), on_labelled, "{text} on ssd_dc1");
            assert_eq!(c.met_by(&bare), on_bare, "{text} on a bare node");
        }
        let both = [
            NodeConstraint::parse("disk==ssd").unwrap(),
            NodeConstraint::parse("datacenter!=dc2").unwrap(),
        ];
        assert!(meets_all(&both, &ssd_dc1));
        assert!(!meets_all(&both, &bare));
        assert!(meets_all(&[], &bare), "no constraint: every node");
    }

    #[test]
    fn a_list_of_constraints_is_checked_whole() {
        let c = |text: &str| NodeConstraint::parse(text).unwrap();
        let mut errors = ValidationErrors::default();
        validate_constraints(
            &mut errors,
            "node_constraints",
            &[c("disk==ssd"), c("disk==ssd")],
        );
        assert_eq!(errors.0.len(), 1, "{errors:?}");
        assert_eq!(errors.0[0].field, "node_constraints[1]");
        let mut errors = ValidationErrors::default();
        let smuggled = NodeConstraint {
            label: "disk".into(),
            equal: true,
            value: "ssd\nnode.role==manager".into(),
        };
        validate_constraints(&mut errors, "node_constraints", &[smuggled]);
        assert_eq!(errors.0[0].field, "node_constraints[0]", "{errors:?}");
        let mut errors = ValidationErrors::default();
        let many: Vec<NodeConstraint> = (0..=MAX_CONSTRAINTS)
            .map(|i| c(&format!("l{i}==v")))
            .collect();
        validate_constraints(&mut errors, "node_constraints", &many);
        assert_eq!(errors.0[0].field, "node_constraints", "{errors:?}");
    }
}
