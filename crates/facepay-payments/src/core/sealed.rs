//! What binds a sealed record to its owner (the associated data of its
//! ciphertext), and templates as the bytes that are sealed.

use crate::error::Failure;

pub(crate) fn template_aad(user_id: &str, model: &str) -> String {
    format!("template:{user_id}:{model}")
}

/// A card sealed whole, before the vault.
pub(crate) fn card_aad(method_id: &str) -> String {
    format!("card:{method_id}")
}

/// The core's share of a card, bound to its row and to the vault's token.
pub(crate) fn card_share_aad(method_id: &str, token: &str) -> String {
    format!("card-share:{method_id}:{token}")
}

pub(crate) fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn vector_from_bytes(bytes: &[u8]) -> Result<Vec<f32>, Failure> {
    if !bytes.len().is_multiple_of(4) {
        tracing::error!("template of {} bytes", bytes.len());
        return Err(Failure::internal());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
