//! The books of a load: what was missing, mis-shaped, unexpected or unreadable, by full tensor
//! name, kept by folding and by the module builder and reported as one `WEIGHTS_MISMATCH`.

use crate::error::Error;

/// What did not fit while loading, by full tensor name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Problems {
    /// "`name` [shape]" of tensors that were asked for and absent.
    missing: Vec<String>,
    /// "`name` has shape …, expected …".
    misshaped: Vec<String>,
    /// "`name`" of tensors nothing asked for.
    unexpected: Vec<String>,
    /// Anything else (an unreadable tensor, a name folding made twice).
    other: Vec<String>,
}

impl Problems {
    /// Checks the shape `found` (`None`: absent) of `name` against `expected` (size-1
    /// dimensions may differ); records and returns `false` when it does not fit.
    pub(crate) fn check(&mut self, name: &str, found: Option<&[usize]>, expected: &[usize]) -> bool {
        let Some(found) = found else {
            self.missing.push(format!("`{name}` {expected:?}"));
            return false;
        };
        let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        if found != expected && squeeze(found) != squeeze(expected) {
            self.misshaped(name, found, &format!("{expected:?}"));
            return false;
        }
        true
    }

    /// Records a tensor that was asked for and is absent; `expected` describes its shape.
    pub(crate) fn missing(&mut self, name: &str, expected: &str) {
        self.missing.push(format!("`{name}` {expected}"));
    }

    /// Records a tensor whose shape does not fit; `expected` describes the shape it needs.
    pub(crate) fn misshaped(&mut self, name: &str, found: &[usize], expected: &str) {
        self.misshaped.push(format!("`{name}` has shape {found:?}, expected {expected}"));
    }

    /// Records a tensor nothing asked for; `note` says more, if anything.
    pub(crate) fn unexpected(&mut self, name: &str, note: &str) {
        self.unexpected.push(format!("`{name}`{note}"));
    }

    /// Records a tensor that could not be read.
    pub(crate) fn unreadable(&mut self, error: Error) {
        self.other.push(match error {
            Error::WeightsFormat(m) | Error::WeightsMismatch(m) => m,
            e => e.to_string(),
        });
    }

    /// Records any other problem.
    pub(crate) fn other(&mut self, message: String) {
        self.other.push(message);
    }

    /// How many tensors were asked for and absent.
    pub(crate) fn missing_count(&self) -> usize {
        self.missing.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.misshaped.is_empty() && self.unexpected.is_empty() && self.other.is_empty()
    }

    /// Adds `more` after these.
    pub(crate) fn append(&mut self, mut more: Problems) {
        self.missing.append(&mut more.missing);
        self.misshaped.append(&mut more.misshaped);
        self.unexpected.append(&mut more.unexpected);
        self.other.append(&mut more.other);
    }

    /// The message of a `WEIGHTS_MISMATCH` error, if anything is off, with a hint when more
    /// than a quarter of the `asked` tensors are off (not a damaged file but another model's).
    pub(crate) fn into_result(self, asked: usize) -> std::result::Result<(), String> {
        let mut parts = self.other;
        for (what, list) in
            [("missing", &self.missing), ("mis-shaped", &self.misshaped), ("unexpected", &self.unexpected)]
        {
            if !list.is_empty() {
                parts.push(format!("{} {what} tensor(s): {}", list.len(), summarize(list, 8)));
            }
        }
        if parts.is_empty() {
            return Ok(());
        }
        let bad = self.missing.len() + self.misshaped.len() + self.unexpected.len();
        let hint = if bad * 4 > asked.max(1) { " (these look like the weights of another model)" } else { "" };
        Err(format!("{}{hint}", parts.join("; ")))
    }
}

fn summarize(items: &[String], n: usize) -> String {
    let shown = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n { format!("{shown}, … ({} more)", items.len() - n) } else { shown }
}
