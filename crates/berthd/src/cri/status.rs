//! The only mapping from berth's errors to gRPC status codes.

use tonic::Status;

use crate::store::StoreError;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        match e {
            StoreError::NameReserved { .. } => Status::already_exists(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }
}
