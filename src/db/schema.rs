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
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(api_keys -> apps (app_id));

diesel::allow_tables_to_appear_in_same_query!(apps, api_keys, server_secrets,);
