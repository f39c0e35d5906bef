//! What the shopper population does: which products an order holds (a few hot products,
//! a long tail), how it pays, and whether the shopper pays, declines, walks away or
//! cancels. Pure: no I/O, a seeded random generator in, a plan out.

use ocop_proto::order::v1 as pb;
use rand::Rng;

/// What the shopper does once the order awaits payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fate {
    /// Pays on the provider's page: the order must end CONFIRMED.
    Pay,
    /// Declines on the provider's page: the order ends CANCELLED (payment failed; for a
    /// provider that does not call back on a failure, when the payment deadline passes).
    Decline,
    /// Never pays: the order ends CANCELLED when the payment deadline passes.
    Abandon,
    /// Cancels the unpaid order (CancelOrder).
    Cancel,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pay => "pay",
            Self::Decline => "decline",
            Self::Abandon => "abandon",
            Self::Cancel => "cancel",
        }
    }
}

/// One order to place: everything random about it, decided up front.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub fate: Fate,
    pub method: pb::PaymentMethod,
    /// (index into the product list, quantity); distinct products.
    pub lines: Vec<(usize, i32)>,
    /// Send the same PlaceOrder (same idempotency key) a second time.
    pub retry: bool,
    pub delivery: pb::DeliveryMethod,
    pub channel: pb::SalesChannel,
    /// Who orders: the shopper's name, phone and address are made from it.
    pub shopper: u64,
}

/// The population's habits.
#[derive(Debug, Clone)]
pub struct Mix {
    pub methods: Vec<(pb::PaymentMethod, u32)>,
    pub decline: f64,
    pub abandon: f64,
    pub cancel: f64,
    pub retry: f64,
    pub max_lines: usize,
}

impl Mix {
    /// Checks the shares: each in [0, 1], decline + abandon + cancel ≤ 1, some method
    /// with a weight, at least one line.
    pub fn validate(&self) -> Result<(), String> {
        for (name, share) in [
            ("decline", self.decline),
            ("abandon", self.abandon),
            ("cancel", self.cancel),
            ("retry", self.retry),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!(
                    "--{name}-share must be between 0 and 1, not {share}"
                ));
            }
        }
        if self.decline + self.abandon + self.cancel > 1.0 + 1e-9 {
            return Err("--decline-share + --abandon-share + --cancel-share exceed 1".into());
        }
        if self.methods.iter().all(|(_, weight)| *weight == 0) {
            return Err("--methods gives no method a weight".into());
        }
        if self.max_lines == 0 {
            return Err("--max-lines must be at least 1".into());
        }
        Ok(())
    }

    /// A plan for the next order over `picker`'s products.
    pub fn plan(&self, rng: &mut impl Rng, picker: &ProductPicker) -> Plan {
        let roll: f64 = rng.random();
        let fate = if roll < self.decline {
            Fate::Decline
        } else if roll < self.decline + self.abandon {
            Fate::Abandon
        } else if roll < self.decline + self.abandon + self.cancel {
            Fate::Cancel
        } else {
            Fate::Pay
        };
        let count = rng.random_range(1..=self.max_lines.min(picker.len()).max(1));
        let lines = picker
            .pick_distinct(rng, count)
            .into_iter()
            .map(|product| (product, quantity(rng)))
            .collect();
        Plan {
            fate,
            method: self.method(rng),
            lines,
            retry: rng.random_bool(self.retry),
            delivery: weighted(
                rng,
                &[
                    (pb::DeliveryMethod::Standard, 70),
                    (pb::DeliveryMethod::Express, 20),
                    (pb::DeliveryMethod::Pickup, 10),
                ],
            ),
            channel: weighted(
                rng,
                &[
                    (pb::SalesChannel::Web, 80),
                    (pb::SalesChannel::Postmart, 15),
                    (pb::SalesChannel::Voso, 5),
                ],
            ),
            shopper: rng.random(),
        }
    }

    fn method(&self, rng: &mut impl Rng) -> pb::PaymentMethod {
        weighted(rng, &self.methods)
    }
}

/// Mostly one unit, sometimes two or three.
fn quantity(rng: &mut impl Rng) -> i32 {
    weighted(rng, &[(1, 60), (2, 30), (3, 10)])
}

fn weighted<T: Copy>(rng: &mut impl Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (choice, weight) in choices {
        if roll < *weight {
            return *choice;
        }
        roll -= weight;
    }
    choices[choices.len() - 1].0
}

/// `sandbox=40,vnpay=15,…`: payment methods and their weights.
pub fn parse_methods(raw: &str) -> Result<Vec<(pb::PaymentMethod, u32)>, String> {
    let mut methods = Vec::new();
    for part in raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let method = pb::PaymentMethod::from_str_name(&format!(
            "PAYMENT_METHOD_{}",
            name.trim().to_ascii_uppercase()
        ))
        .filter(|method| *method != pb::PaymentMethod::Unspecified)
        .ok_or_else(|| {
            format!("`{name}` is not a payment method (sandbox, vietqr, vnpay, momo, zalopay)")
        })?;
        let weight = weight
            .trim()
            .parse()
            .map_err(|_| format!("`{weight}` is not a weight (a whole number)"))?;
        methods.push((method, weight));
    }
    if methods.is_empty() {
        return Err("no payment method given".into());
    }
    Ok(methods)
}

/// A share: `0.05` or `5%`.
pub fn parse_share(raw: &str) -> Result<f64, String> {
    let (number, scale) = match raw.trim().strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (raw.trim(), 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a share (e.g. 0.05 or 5%)"))?;
    let share = value / scale;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("`{raw}` is not between 0 and 1 (0% and 100%)"))
    }
}

/// Picks products with a Zipf-like popularity: the product of rank k is chosen with a
/// weight of 1/k^s. Ranks are dealt to the products at random, so the hot products are
/// not simply the first ones the catalogue lists.
#[derive(Debug, Clone)]
pub struct ProductPicker {
    /// Cumulative weights by rank.
    cumulative: Vec<f64>,
    /// The product index of each rank.
    by_rank: Vec<usize>,
}

impl ProductPicker {
    /// `count` products, exponent `s` (0 = uniform, 1 = classic Zipf; larger = hotter).
    pub fn zipf(count: usize, s: f64, rng: &mut impl Rng) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=count)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(s);
                total
            })
            .collect();
        let mut by_rank: Vec<usize> = (0..count).collect();
        // Fisher–Yates.
        for i in (1..count).rev() {
            by_rank.swap(i, rng.random_range(0..=i));
        }
        Self {
            cumulative,
            by_rank,
        }
    }

    pub fn len(&self) -> usize {
        self.by_rank.len()
    }

    /// One product index.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let roll = rng.random::<f64>() * total;
        let rank = self
            .cumulative
            .partition_point(|&sum| sum <= roll)
            .min(self.by_rank.len() - 1);
        self.by_rank[rank]
    }

    /// `count` different products (at most as many as there are), hot ones more often.
    pub fn pick_distinct(&self, rng: &mut impl Rng, count: usize) -> Vec<usize> {
        let count = count.min(self.len());
        let mut picked: Vec<usize> = Vec::with_capacity(count);
        let mut attempts = 0;
        while picked.len() < count && attempts < 64 * count {
            let product = self.pick(rng);
            if !picked.contains(&product) {
                picked.push(product);
            }
            attempts += 1;
        }
        // A very hot head can starve the draw: fill up with the coldest products.
        let mut rank = self.len();
        while picked.len() < count {
            rank -= 1;
            let product = self.by_rank[rank];
            if !picked.contains(&product) {
                picked.push(product);
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn zipf_picker_makes_a_few_products_hot() {
        let mut rng = rng();
        let picker = ProductPicker::zipf(100, 1.0, &mut rng);
        let mut counts = vec![0u32; 100];
        let draws = 200_000;
        for _ in 0..draws {
            counts[picker.pick(&mut rng)] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Rank 1 of 100 under s = 1 has 1/H(100) ≈ 19.3 % of the weight; the top ten ≈ 55 %.
        let hottest = f64::from(counts[0]) / f64::from(draws);
        let top_ten = f64::from(counts[..10].iter().sum::<u32>()) / f64::from(draws);
        assert!((0.18..0.21).contains(&hottest), "hottest {hottest}");
        assert!((0.52..0.58).contains(&top_ten), "top ten {top_ten}");
        assert!(counts[99] > 0, "the tail is still picked");
    }

    #[test]
    fn zipf_exponent_zero_is_uniform() {
        let mut rng = rng();
        let picker = ProductPicker::zipf(10, 0.0, &mut rng);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[picker.pick(&mut rng)] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn hot_products_are_dealt_at_random_not_by_list_order() {
        let picker = ProductPicker::zipf(50, 1.0, &mut rng());
        let mut sorted = picker.by_rank.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");
        assert_ne!(picker.by_rank, sorted, "shuffled");
    }

    #[test]
    fn distinct_picks_never_repeat_a_product_even_when_the_head_is_very_hot() {
        let mut rng = rng();
        let picker = ProductPicker::zipf(6, 8.0, &mut rng);
        for _ in 0..1_000 {
            let mut picked = picker.pick_distinct(&mut rng, 5);
            assert_eq!(picked.len(), 5);
            picked.sort_unstable();
            picked.dedup();
            assert_eq!(picked.len(), 5);
        }
        assert_eq!(picker.pick_distinct(&mut rng, 9).len(), 6, "capped");
    }

    fn mix() -> Mix {
        Mix {
            methods: parse_methods("sandbox=1,vnpay=1").unwrap(),
            decline: 0.1,
            abandon: 0.1,
            cancel: 0.1,
            retry: 0.5,
            max_lines: 5,
        }
    }

    #[test]
    fn plans_follow_the_shares() {
        let mut rng = rng();
        let picker = ProductPicker::zipf(40, 1.0, &mut rng);
        let mix = mix();
        let mut fates = std::collections::BTreeMap::new();
        let mut retries = 0;
        for _ in 0..20_000 {
            let plan = mix.plan(&mut rng, &picker);
            assert!((1..=5).contains(&plan.lines.len()));
            assert!(plan.lines.iter().all(|(_, q)| (1..=3).contains(q)));
            assert!(matches!(
                plan.method,
                pb::PaymentMethod::Sandbox | pb::PaymentMethod::Vnpay
            ));
            *fates.entry(plan.fate).or_insert(0) += 1;
            retries += usize::from(plan.retry);
        }
        for fate in [Fate::Decline, Fate::Abandon, Fate::Cancel] {
            assert!((1_700..2_300).contains(&fates[&fate]), "{fates:?}");
        }
        assert!((13_000..15_000).contains(&fates[&Fate::Pay]), "{fates:?}");
        assert!((9_000..11_000).contains(&retries), "{retries}");
    }

    #[test]
    fn the_same_seed_gives_the_same_plans() {
        let plans = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let picker = ProductPicker::zipf(40, 1.0, &mut rng);
            (0..20)
                .map(|_| mix().plan(&mut rng, &picker))
                .collect::<Vec<_>>()
        };
        assert_eq!(plans(3), plans(3));
        assert_ne!(plans(3), plans(4));
    }

    #[test]
    fn methods_parse_with_weights_and_refuse_unknown_names() {
        assert_eq!(
            parse_methods("sandbox=40, VietQR=10,momo").unwrap(),
            vec![
                (pb::PaymentMethod::Sandbox, 40),
                (pb::PaymentMethod::Vietqr, 10),
                (pb::PaymentMethod::Momo, 1)
            ]
        );
        assert!(parse_methods("cash=1").is_err());
        assert!(parse_methods("unspecified=1").is_err());
        assert!(parse_methods("vnpay=x").is_err());
        assert!(parse_methods("").is_err());
    }

    #[test]
    fn shares_parse_as_fractions_or_percentages() {
        assert_eq!(parse_share("0.05").unwrap(), 0.05);
        assert_eq!(parse_share("5%").unwrap(), 0.05);
        assert_eq!(parse_share("0").unwrap(), 0.0);
        assert!(parse_share("120%").is_err());
        assert!(parse_share("-0.1").is_err());
        assert!(parse_share("lots").is_err());
    }

    #[test]
    fn shares_that_add_up_beyond_everyone_are_refused() {
        let mut mix = mix();
        assert!(mix.validate().is_ok());
        mix.decline = 0.6;
        mix.abandon = 0.6;
        assert!(mix.validate().is_err());
    }
}
