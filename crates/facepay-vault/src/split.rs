//! 2-of-2 secret sharing by XOR with a one-time pad.
//!
//! Hand-written because it is three lines: with a uniformly random pad as
//! long as the secret, each share alone is uniformly random and says nothing
//! about any byte of the secret; the two together give it back. Shamir
//! would add nothing for two parties of which both are needed.

use zeroize::Zeroizing;

use crate::{VaultError, random_bytes_into};

/// The two shares of a secret.
pub(crate) type Shares = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// Splits `secret` into two shares of its length.
pub(crate) fn split(secret: &[u8]) -> Result<Shares, VaultError> {
    let mut pad = Zeroizing::new(vec![0u8; secret.len()]);
    random_bytes_into(&mut pad)?;
    let other = Zeroizing::new(secret.iter().zip(pad.iter()).map(|(s, p)| s ^ p).collect());
    Ok((pad, other))
}

/// Joins two shares; `None` when their lengths differ (not shares of one
/// secret).
pub(crate) fn join(a: &[u8], b: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if a.len() != b.len() {
        return None;
    }
    Some(Zeroizing::new(
        a.iter().zip(b.iter()).map(|(x, y)| x ^ y).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_join_and_each_is_fresh() {
        let secret = b"4242424242424242";
        let (a, b) = split(secret).unwrap();
        let (c, d) = split(secret).unwrap();
        assert_eq!(join(&a, &b).unwrap().as_slice(), secret);
        assert_eq!(join(&d, &c).unwrap().as_slice(), secret);
        assert_ne!(a, c, "a new pad each time");
        assert_ne!(b.as_slice(), secret);
        assert!(join(&a, &b[1..]).is_none());
    }
}
