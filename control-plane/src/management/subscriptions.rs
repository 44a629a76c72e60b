//! Subscriptions: create (the only answer with both keys), get, list, suspend, resume,
//! regenerate one key (the only answer with it), delete. The rules live in the store; no view
//! and no log line carries a key.

use gatehouse_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ManagementService;
use super::views::timestamp;
use crate::model::{KeySlot, Scope, Subscription, SubscriptionState, etag};
use crate::store::{SubscriptionDefinition, WriteOptions};

/// A subscription as operators see it: never its keys.
pub(super) fn subscription_view(subscription: &Subscription) -> pb::Subscription {
    pb::Subscription {
        name: subscription.name.clone(),
        display_name: subscription.display_name.clone(),
        scope: subscription.scope.api_id().to_string(),
        state: match subscription.state {
            SubscriptionState::Active => pb::SubscriptionState::Active,
            SubscriptionState::Suspended => pb::SubscriptionState::Suspended,
        } as i32,
        created: Some(timestamp(subscription.created)),
        revision: subscription.revision,
        etag: etag(subscription.revision),
    }
}

impl ManagementService {
    pub(super) async fn create_subscription_inner(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::CreatedSubscription>, Status> {
        let request = request.into_inner();
        let definition = SubscriptionDefinition {
            name: request.name,
            display_name: request.display_name,
            scope: Scope::from_api_id(&request.scope),
        };
        let created = self.store.create_subscription(definition).await?;
        let subscription = &created.subscription;
        tracing::info!(
            name = %subscription.name,
            scope = %subscription.scope.api_id(),
            revision = subscription.revision,
            "subscription created"
        );
        Ok(Response::new(pb::CreatedSubscription {
            subscription: Some(subscription_view(subscription)),
            primary_key: created.primary_key,
            secondary_key: created.secondary_key,
        }))
    }

    pub(super) fn get_subscription_view(&self, name: &str) -> Result<pb::Subscription, Status> {
        let state = self.store.state();
        let subscription = state.subscriptions.get(name).ok_or_else(|| {
            Status::not_found(format!("subscription '{}' not found", gatehouse_shared::api::quote(name)))
        })?;
        Ok(subscription_view(subscription))
    }

    pub(super) fn list_subscriptions_view(&self) -> pb::ListSubscriptionsResponse {
        let state = self.store.state();
        let subscriptions = state.subscriptions.values().map(subscription_view).collect();
        pb::ListSubscriptionsResponse { subscriptions, revision: state.revision }
    }

    /// Suspends or resumes; already in that state, nothing is written.
    pub(super) async fn set_subscription_state_inner(
        &self,
        name: &str,
        if_match: String,
        wanted: SubscriptionState,
    ) -> Result<Response<pb::Subscription>, Status> {
        let options = WriteOptions { if_match, ..WriteOptions::default() };
        let subscription = self.store.set_subscription_state(name, wanted, &options).await?;
        tracing::info!(name, state = wanted.as_str(), revision = subscription.revision, "subscription state set");
        Ok(Response::new(subscription_view(&subscription)))
    }

    pub(super) async fn regenerate_subscription_key_inner(
        &self,
        request: Request<pb::RegenerateSubscriptionKeyRequest>,
    ) -> Result<Response<pb::RegeneratedSubscriptionKey>, Status> {
        let request = request.into_inner();
        let slot = match pb::SubscriptionKey::try_from(request.key) {
            Ok(pb::SubscriptionKey::Primary) => KeySlot::Primary,
            Ok(pb::SubscriptionKey::Secondary) => KeySlot::Secondary,
            _ => return Err(Status::invalid_argument("say which key to regenerate: PRIMARY or SECONDARY")),
        };
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let (subscription, key) = self.store.regenerate_subscription_key(&request.name, slot, &options).await?;
        tracing::info!(
            name = %subscription.name,
            key = slot.as_str(),
            revision = subscription.revision,
            "subscription key regenerated"
        );
        Ok(Response::new(pb::RegeneratedSubscriptionKey {
            subscription: Some(subscription_view(&subscription)),
            which: request.key,
            key,
        }))
    }

    pub(super) async fn delete_subscription_inner(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let options = WriteOptions { if_match: request.if_match, ..WriteOptions::default() };
        let revision = self.store.delete_subscription(&request.name, &options).await?;
        tracing::info!(name = %request.name, revision, "subscription deleted");
        Ok(Response::new(pb::DeleteSubscriptionResponse { revision }))
    }
}
