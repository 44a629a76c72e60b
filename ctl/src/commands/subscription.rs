//! `subscription`: create (keys shown once), list, show, suspend, resume, regenerate a key and
//! delete subscriptions.

use gatehouse_proto::v1 as pb;

use crate::args::{Format, SubscriptionCommand};
use crate::connection::{Server, connect, status};
use crate::output;

/// Runs a `subscription` verb; returns the revision its write created, if it wrote.
pub async fn run(server: &Server, format: Format, command: SubscriptionCommand) -> anyhow::Result<Option<u64>> {
    let mut client = connect(server).await?;
    let revision = match command {
        SubscriptionCommand::Create { name, scope, display_name } => {
            let request = pb::CreateSubscriptionRequest { name, display_name, scope: scope.api.unwrap_or_default() };
            let created = client.create_subscription(request).await.map_err(status)?.into_inner();
            output::print_subscription_created(format, &created);
            created.subscription.map(|s| s.revision)
        }
        SubscriptionCommand::List => {
            let list = client.list_subscriptions(pb::ListSubscriptionsRequest {}).await.map_err(status)?.into_inner();
            output::print_subscriptions(format, &list.subscriptions);
            None
        }
        SubscriptionCommand::Show { name } => {
            let request = pb::GetSubscriptionRequest { name };
            let subscription = client.get_subscription(request).await.map_err(status)?.into_inner();
            output::print_subscription(format, &subscription);
            None
        }
        SubscriptionCommand::Suspend { name, write } => {
            let request = pb::SuspendSubscriptionRequest { name, if_match: write.if_match };
            let subscription = client.suspend_subscription(request).await.map_err(status)?.into_inner();
            output::print_subscription(format, &subscription);
            Some(subscription.revision)
        }
        SubscriptionCommand::Resume { name, write } => {
            let request = pb::ResumeSubscriptionRequest { name, if_match: write.if_match };
            let subscription = client.resume_subscription(request).await.map_err(status)?.into_inner();
            output::print_subscription(format, &subscription);
            Some(subscription.revision)
        }
        SubscriptionCommand::Regenerate { name, key, write } => {
            let which = if key.primary { pb::SubscriptionKey::Primary } else { pb::SubscriptionKey::Secondary };
            let request = pb::RegenerateSubscriptionKeyRequest { name, key: which as i32, if_match: write.if_match };
            let regenerated = client.regenerate_subscription_key(request).await.map_err(status)?.into_inner();
            output::print_subscription_key(format, &regenerated);
            regenerated.subscription.map(|s| s.revision)
        }
        SubscriptionCommand::Delete { name, write } => {
            let request = pb::DeleteSubscriptionRequest { name: name.clone(), if_match: write.if_match };
            let done = client.delete_subscription(request).await.map_err(status)?.into_inner();
            output::print_deleted(format, "subscription", &name, done.revision);
            Some(done.revision)
        }
    };
    Ok(revision)
}
