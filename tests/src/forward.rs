//! Test doubles in front of a real adapter change one or two calls and pass the rest
//! through. [`forward_message_store!`] writes the pass-through methods of a
//! `MessageStore` impl, so that each double spells out only what it changes, and forwards
//! every other call, the message policy's state included (the trait's defaults would
//! refuse those, and a forgotten one would fail a policy test for the wrong reason).

/// Inside `impl MessageStore for Wrapper`: `forward_message_store!(field; method, …);`
/// forwards each listed method to `self.field` (a name, or `0` for a tuple struct).
#[macro_export]
macro_rules! forward_message_store {
    ($inner:tt; $($method:ident),+ $(,)?) => {
        $( $crate::forward_message_store!(@method $inner $method); )+
    };
    (@method $inner:tt claim) => {
        fn claim(
            &self,
            key: &::referral_domain::ports::MessageKey,
            holder: &::referral_domain::ports::Holder,
            now: ::chrono::DateTime<::chrono::Utc>,
            lease: ::std::time::Duration,
        ) -> impl ::std::future::Future<
            Output = Result<::referral_domain::ports::Claim, ::referral_domain::ports::AdapterError>,
        > + Send {
            self.$inner.claim(key, holder, now, lease)
        }
    };
    (@method $inner:tt keep_draft) => {
        fn keep_draft(
            &self,
            holder: &::referral_domain::ports::Holder,
            draft: &::referral_domain::ports::ReferralMessage,
        ) -> impl ::std::future::Future<Output = Result<bool, ::referral_domain::ports::AdapterError>>
               + Send {
            self.$inner.keep_draft(holder, draft)
        }
    };
    (@method $inner:tt record) => {
        fn record(
            &self,
            decision: ::referral_domain::ports::Decision,
            holder: &::referral_domain::ports::Holder,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> impl ::std::future::Future<
            Output = Result<::referral_domain::ports::Recorded, ::referral_domain::ports::AdapterError>,
        > + Send {
            self.$inner.record(decision, holder, now)
        }
    };
    (@method $inner:tt release) => {
        fn release(
            &self,
            key: &::referral_domain::ports::MessageKey,
            holder: &::referral_domain::ports::Holder,
            now: ::chrono::DateTime<::chrono::Utc>,
        ) -> impl ::std::future::Future<Output = Result<(), ::referral_domain::ports::AdapterError>>
               + Send {
            self.$inner.release(key, holder, now)
        }
    };
    (@method $inner:tt decisions) => {
        fn decisions(
            &self,
            customer_email: &str,
        ) -> impl ::std::future::Future<
            Output = Result<
                Vec<::referral_domain::ports::Decision>,
                ::referral_domain::ports::AdapterError,
            >,
        > + Send {
            self.$inner.decisions(customer_email)
        }
    };
    (@method $inner:tt take_message_slot) => {
        fn take_message_slot(
            &self,
            customer_email: &str,
            wanted: ::referral_domain::ports::MessageSlot,
            cooldown: ::std::time::Duration,
        ) -> impl ::std::future::Future<
            Output = Result<
                ::referral_domain::ports::SlotTaken,
                ::referral_domain::ports::AdapterError,
            >,
        > + Send {
            self.$inner.take_message_slot(customer_email, wanted, cooldown)
        }
    };
    (@method $inner:tt message_slot) => {
        fn message_slot(
            &self,
            customer_email: &str,
        ) -> impl ::std::future::Future<
            Output = Result<
                Option<::referral_domain::ports::MessageSlot>,
                ::referral_domain::ports::AdapterError,
            >,
        > + Send {
            self.$inner.message_slot(customer_email)
        }
    };
    (@method $inner:tt spend_model_call) => {
        fn spend_model_call(
            &self,
            day: ::chrono::NaiveDate,
            limit: u64,
        ) -> impl ::std::future::Future<Output = Result<bool, ::referral_domain::ports::AdapterError>>
               + Send {
            self.$inner.spend_model_call(day, limit)
        }
    };
    (@method $inner:tt model_calls) => {
        fn model_calls(
            &self,
            day: ::chrono::NaiveDate,
        ) -> impl ::std::future::Future<Output = Result<u64, ::referral_domain::ports::AdapterError>>
               + Send {
            self.$inner.model_calls(day)
        }
    };
    (@method $inner:tt list) => {
        fn list(
            &self,
            customer_email: &str,
        ) -> impl ::std::future::Future<
            Output = Result<
                Vec<::referral_domain::ports::ReferralMessage>,
                ::referral_domain::ports::AdapterError,
            >,
        > + Send {
            self.$inner.list(customer_email)
        }
    };
}
