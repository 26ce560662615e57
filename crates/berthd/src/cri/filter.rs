//! The filters of the List RPCs: an ID prefix, a pod ID prefix, a state and a label selector,
//! each matching everything when absent.

use std::collections::{BTreeMap, HashMap};

/// What a List request's filter asks of an object.
#[derive(Debug)]
pub struct Filter<'a, S> {
    pub id: &'a str,
    pub pod_id: &'a str,
    pub state: Option<S>,
    pub labels: &'a HashMap<String, String>,
}

impl<S: PartialEq> Filter<'_, S> {
    /// Whether an object with this ID, pod ID, state and labels passes. Objects with no pod
    /// (pods themselves) pass an empty pod filter only.
    pub fn matches(
        &self,
        id: &str,
        pod_id: &str,
        state: S,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        id.starts_with(self.id)
            && pod_id.starts_with(self.pod_id)
            && self.state.as_ref().is_none_or(|s| *s == state)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// CRI maps are unordered; berth keeps them ordered.
pub fn to_hash(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_parts_match_everything_and_present_ones_must_all_hold() {
        let labels: BTreeMap<String, String> =
            [("app".into(), "web".into()), ("tier".into(), "1".into())].into();
        let none = HashMap::new();
        let all = Filter::<u8> {
            id: "",
            pod_id: "",
            state: None,
            labels: &none,
        };
        assert!(all.matches("abc", "p1", 0, &labels));
        let selector: HashMap<String, String> = [("app".into(), "web".into())].into();
        let some = Filter {
            id: "ab",
            pod_id: "p",
            state: Some(1u8),
            labels: &selector,
        };
        assert!(some.matches("abc", "p1", 1, &labels));
        assert!(!some.matches("abc", "p1", 0, &labels), "state");
        assert!(!some.matches("xbc", "p1", 1, &labels), "id prefix");
        assert!(!some.matches("abc", "q1", 1, &labels), "pod prefix");
        assert!(!some.matches("abc", "p1", 1, &BTreeMap::new()), "labels");
    }
}
