//! What a model's tokens cost, for the ledger's estimates: a small table
//! of known models (US dollars per million tokens, as published), which
//! `[provider.pricing]` overrides. A model that is in neither costs 0 and
//! is recorded as unpriced, so nobody mistakes 0 for free.

use std::collections::BTreeMap;

use graft_config::Price;

/// Prefix of the model name, input and output price per million tokens.
/// The longest matching prefix wins (`claude-opus-4-5` before
/// `claude-opus-4`).
const TABLE: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-haiku", 0.25, 1.25),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5", 1.25, 10.0),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.5, 10.0),
    ("o4-mini", 1.1, 4.4),
    ("o3-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
];

/// The price of `model`: the config's override, else the table's.
pub fn price(model: &str, overrides: &BTreeMap<String, Price>) -> Option<Price> {
    if let Some(p) = overrides.get(model) {
        return Some(*p);
    }
    let bare = model.rsplit('/').next().unwrap_or(model);
    TABLE
        .iter()
        .filter(|(prefix, _, _)| bare.starts_with(prefix))
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|&(_, input, output)| Price { input, output })
}

/// The cost of a call in dollars.
pub fn cost(price: &Price, input_tokens: u64, output_tokens: u64) -> f64 {
    (input_tokens as f64 * price.input + output_tokens as f64 * price.output) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_overrides() {
        let none = BTreeMap::new();
        assert_eq!(
            price("claude-sonnet-4-5-20250929", &none),
            Some(Price {
                input: 3.0,
                output: 15.0
            })
        );
        assert_eq!(
            price("claude-opus-4-5", &none),
            Some(Price {
                input: 5.0,
                output: 25.0
            })
        );
        assert_eq!(
            price("claude-opus-4-1", &none),
            Some(Price {
                input: 15.0,
                output: 75.0
            })
        );
        assert_eq!(price("gpt-4o-mini-2024-07-18", &none).unwrap().input, 0.15);
        assert_eq!(price("openai/gpt-4o", &none).unwrap().output, 10.0);
        assert_eq!(price("qwen2.5-coder:7b", &none), None);
        let mine = BTreeMap::from([(
            "qwen2.5-coder:7b".to_string(),
            Price {
                input: 0.0,
                output: 0.0,
            },
        )]);
        assert_eq!(
            price("qwen2.5-coder:7b", &mine),
            Some(Price {
                input: 0.0,
                output: 0.0
            })
        );
        let c = cost(
            &Price {
                input: 3.0,
                output: 15.0,
            },
            10_000,
            1_000,
        );
        assert!((c - 0.045).abs() < 1e-12);
    }
}
