# Sourced by bench/run.sh and bench/all-download.sh: the database's own
# export of everything an `all=true` stream of one app answers, so that both
# compare the stream with the same query. The app's live identities in the
# stream's order (newest first), each joined with its live documents, the
# latest verification per level and its metadata (one row per document).
#
#   children_export_select APP_ID   # prints the SELECT
children_export_select() {
  local app=$1
  echo "SELECT i.*, d.*, s.*, m.* FROM identities i
    LEFT JOIN documents d ON d.app_id = i.app_id AND d.identity_id = i.id AND d.deleted_at IS NULL
    LEFT JOIN (SELECT * FROM (SELECT identity_id, level, status, id, updated_at, row_number() OVER
                 (PARTITION BY identity_id, level ORDER BY created_at DESC, id DESC) AS n
               FROM verifications WHERE app_id = '$app') latest WHERE n = 1) s ON s.identity_id = i.id
    LEFT JOIN identity_metadata m ON m.identity_id = i.id
    WHERE i.app_id = '$app' AND i.deleted_at IS NULL ORDER BY i.created_at DESC, i.id DESC"
}
