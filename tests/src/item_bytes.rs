//! A feature item's size as DynamoDB counts it (what its write units and stream records
//! cost), from the attributes it is stored as.

use referral_domain::features::CustomerFeatures;

use crate::capacity::{SizeError, item_size};

/// Why an item could not be sized.
#[derive(Debug, thiserror::Error)]
pub enum ItemBytesError {
    #[error("the item does not serialise: {0}")]
    Serialise(#[from] serde_dynamo::Error),
    #[error("the item has no JSON wire form: {0}")]
    Wire(#[from] serde_json::Error),
    #[error(transparent)]
    Size(#[from] SizeError),
}

/// Bytes of `item` by DynamoDB's sizing rules.
pub fn stored_bytes(item: &CustomerFeatures) -> Result<u64, ItemBytesError> {
    let stored: serde_dynamo::Item = serde_dynamo::to_item(item)?;
    Ok(item_size(&serde_json::to_value(&stored)?)?)
}
