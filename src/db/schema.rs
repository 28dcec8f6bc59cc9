// The schema shared by PostgreSQL and SQLite. Only types both backends map
// the same way appear here: Text (UUIDs, enums, JSON), Bool, Date, Timestamp
// (UTC, microseconds). Both migration trees must produce exactly this.

diesel::table! {
    apps (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        app_id -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        scopes -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        chain -> Text,
        created_at -> Timestamp,
        actor -> Text,
        api_key_id -> Nullable<Text>,
        os_user -> Nullable<Text>,
        action -> Text,
        targets -> Text,
        fields -> Text,
        outcome -> Text,
        request_id -> Nullable<Text>,
        client_address -> Nullable<Text>,
        identity_id -> Nullable<Text>,
        status -> Nullable<Integer>,
    }
}

diesel::table! {
    audit_links (chain, seq) {
        chain -> Text,
        seq -> BigInt,
        record_id -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_pending (record_id) {
        record_id -> Text,
        chain -> Text,
    }
}

diesel::table! {
    identity_relations (id) {
        id -> Text,
        app_id -> Text,
        company_id -> Text,
        person_id -> Text,
        role -> Text,
        ownership -> Nullable<Integer>,
        title -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_heads (chain) {
        chain -> Text,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    identities (id) {
        id -> Text,
        app_id -> Text,
        identity_type -> Text,
        name -> Text,
        email -> Text,
        birthday -> Nullable<Text>,
        gender -> Nullable<Text>,
        address_street -> Text,
        address_city -> Text,
        address_state -> Nullable<Text>,
        address_postal_code -> Text,
        address_country -> Text,
        phone_number -> Text,
        phone_sms -> Bool,
        tax_country -> Text,
        tax_id_number -> Text,
        tax_state -> Nullable<Text>,
        tax_formation_region -> Nullable<Text>,
        identity_owner -> Nullable<Text>,
        blocked -> Bool,
        identity_confirmed -> Bool,
        risk_rating -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        email_domain -> Text,
        email_local_reversed -> Text,
        email_normalized -> Text,
        ref_id -> Nullable<Text>,
        wrapped_key -> Nullable<Text>,
        erased_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    documents (id) {
        id -> Text,
        app_id -> Text,
        identity_id -> Text,
        document_type -> Text,
        side -> Text,
        label -> Nullable<Text>,
        description -> Nullable<Text>,
        url -> Text,
        position -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        upload_key -> Nullable<Text>,
        object_secret -> Nullable<Text>,
    }
}

diesel::table! {
    verifications (id) {
        id -> Text,
        app_id -> Text,
        identity_id -> Text,
        level -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        risk_rating -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        identity_deleted_at -> Nullable<Timestamp>,
        reject_type -> Nullable<Text>,
        reject_labels -> Nullable<Text>,
        client_comment -> Nullable<Text>,
    }
}

diesel::table! {
    identity_events (id) {
        id -> Text,
        app_id -> Text,
        identity_id -> Text,
        event_type -> Text,
        verification_id -> Nullable<Text>,
        level -> Nullable<Text>,
        status -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
        reject_type -> Nullable<Text>,
        reject_labels -> Nullable<Text>,
        client_comment -> Nullable<Text>,
        internal_comment -> Nullable<Text>,
    }
}

diesel::table! {
    console_sessions (id) {
        id -> Text,
        app_id -> Text,
        api_key_id -> Text,
        created_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        app_id -> Text,
        event_type -> Text,
        identity_id -> Nullable<Text>,
        payload -> Text,
        position -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (app_id, idempotency_key) {
        app_id -> Text,
        idempotency_key -> Text,
        method -> Text,
        path -> Text,
        body_hash -> Text,
        locked_until -> Nullable<Timestamp>,
        response_status -> Nullable<Integer>,
        response_body -> Nullable<Binary>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    identity_metadata (identity_id, meta_key) {
        identity_id -> Text,
        app_id -> Text,
        meta_key -> Text,
        meta_value -> Text,
    }
}

diesel::table! {
    identity_operations (identity_id) {
        identity_id -> Text,
        app_id -> Text,
        active -> Text,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        app_id -> Text,
        url -> Text,
        description -> Nullable<Text>,
        event_types -> Nullable<Text>,
        enabled -> Bool,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        fanned_out_position -> BigInt,
        fanned_out_event_id -> Text,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        app_id -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        app_id -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        latency_ms -> Integer,
        response_excerpt -> Nullable<Text>,
    }
}

diesel::joinable!(api_keys -> apps (app_id));
diesel::joinable!(audit_links -> audit_log (record_id));
diesel::joinable!(audit_pending -> audit_log (record_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::joinable!(verifications -> identities (identity_id));
diesel::joinable!(documents -> identities (identity_id));

diesel::allow_tables_to_appear_in_same_query!(
    apps,
    audit_log,
    audit_links,
    audit_pending,
    audit_heads,
    identity_relations,
    api_keys,
    server_secrets,
    identities,
    documents,
    events,
    console_sessions,
    identity_operations,
    identity_metadata,
    idempotency_keys,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    verifications,
    identity_events,
);
