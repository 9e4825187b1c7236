//! Where each object of an account is, by RunPod id, by name and by owner marker: finding a
//! workload's own pods among 10,000 costs a few hash look-ups, not a scan of the account.
//!
//! An index describes one list. It answers only for a list of the length it was built for
//! (any other list falls back to a scan), and callers check every candidate it returns
//! against the same rule a scan applies, so a stale index can never claim an object that is
//! not the workload's. Pure.

use std::collections::HashMap;

/// Positions of a list's items, by id, name and owner marker.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    len: usize,
    by_id: HashMap<String, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
    by_marker: HashMap<String, Vec<usize>>,
}

fn put(map: &mut HashMap<String, Vec<usize>>, key: &str, at: usize) {
    if key.is_empty() {
        return;
    }
    match map.get_mut(key) {
        Some(positions) => positions.push(at),
        None => {
            map.insert(key.to_string(), vec![at]);
        }
    }
}

impl Lookup {
    /// The index of `items`.
    pub fn build<T>(
        items: &[T],
        id: impl Fn(&T) -> &str,
        name: impl Fn(&T) -> &str,
        marker: impl Fn(&T) -> Option<&str>,
    ) -> Self {
        let mut lookup = Self {
            len: items.len(),
            by_id: HashMap::with_capacity(items.len()),
            by_name: HashMap::with_capacity(items.len()),
            by_marker: HashMap::new(),
        };
        for (at, item) in items.iter().enumerate() {
            put(&mut lookup.by_id, id(item), at);
            put(&mut lookup.by_name, name(item), at);
            if let Some(marker) = marker(item) {
                put(&mut lookup.by_marker, marker, at);
            }
        }
        lookup
    }

    /// Whether the index was built for a list of `len` items.
    pub fn fits(&self, len: usize) -> bool {
        self.len == len
    }

    /// The positions, in list order and without repeats, of the items with any of `ids`, the
    /// name `name` or the marker `marker`; `None` when the index was built for another list.
    pub fn candidates(
        &self,
        len: usize,
        ids: &[Option<&str>],
        name: &str,
        marker: Option<&str>,
    ) -> Option<Vec<usize>> {
        if !self.fits(len) {
            return None;
        }
        let mut out: Vec<usize> = Vec::new();
        for id in ids.iter().flatten() {
            out.extend(self.by_id.get(*id).into_iter().flatten());
        }
        out.extend(self.by_name.get(name).into_iter().flatten());
        if let Some(marker) = marker {
            out.extend(self.by_marker.get(marker).into_iter().flatten());
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// The first position of the item with RunPod id `id`; `None` when there is none or the
    /// index was built for another list.
    pub fn by_id(&self, len: usize, id: &str) -> Option<Option<usize>> {
        self.fits(len)
            .then(|| self.by_id.get(id).and_then(|p| p.first().copied()))
    }

    /// The first position of the item named `name`, as [`Lookup::by_id`].
    pub fn by_name(&self, len: usize, name: &str) -> Option<Option<usize>> {
        self.fits(len)
            .then(|| self.by_name.get(name).and_then(|p| p.first().copied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item {
        id: &'static str,
        name: &'static str,
        marker: Option<&'static str>,
    }

    fn lookup(items: &[Item]) -> Lookup {
        Lookup::build(items, |i| i.id, |i| i.name, |i| i.marker)
    }

    #[test]
    fn candidates_are_in_list_order_without_repeats() {
        let items = [
            Item {
                id: "a",
                name: "x",
                marker: Some("u1"),
            },
            Item {
                id: "b",
                name: "y",
                marker: None,
            },
            Item {
                id: "c",
                name: "x",
                marker: Some("u1"),
            },
            Item {
                id: "d",
                name: "",
                marker: Some("u2"),
            },
        ];
        let index = lookup(&items);
        assert_eq!(
            index.candidates(4, &[Some("c"), Some("a")], "x", Some("u1")),
            Some(vec![0, 2])
        );
        assert_eq!(index.candidates(4, &[None], "", Some("u2")), Some(vec![3]));
        assert_eq!(
            index.candidates(4, &[Some("zz")], "nope", None),
            Some(vec![])
        );
    }

    #[test]
    fn an_index_of_another_list_answers_nothing() {
        let items = [Item {
            id: "a",
            name: "x",
            marker: None,
        }];
        let index = lookup(&items);
        assert_eq!(index.candidates(2, &[Some("a")], "x", None), None);
        assert_eq!(index.by_id(0, "a"), None);
        assert_eq!(index.by_id(1, "a"), Some(Some(0)));
        assert_eq!(index.by_name(1, "y"), Some(None));
    }
}
