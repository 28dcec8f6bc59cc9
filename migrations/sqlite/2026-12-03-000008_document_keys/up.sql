-- Documents in our own storage were stored as absolute URLs, built from
-- KYC_PUBLIC_URL (or the S3 endpoint) at upload time: a new public URL, port
-- or proxy stranded them. From now on the column holds the storage key
-- (apps/<app id>/documents|evidence/<uuid>.<ext>) and the URL is built when
-- answering; external https URLs stay as they are. Here every stored URL
-- whose path holds a key of the row's own app becomes that key (the query
-- or fragment of a presigned URL dropped). Nothing else changes.
WITH marked AS (
    SELECT id,
           substr(url, instr(url, '/apps/' || app_id || '/documents/') + 1) AS rest
    FROM documents
    WHERE (url LIKE 'http://%' OR url LIKE 'https://%')
      AND instr(url, '/apps/' || app_id || '/documents/') > 0
), unfragmented AS (
    SELECT id,
           CASE WHEN instr(rest, '#') > 0 THEN substr(rest, 1, instr(rest, '#') - 1) ELSE rest END
               AS rest
    FROM marked
), keys AS (
    SELECT id,
           CASE WHEN instr(rest, '?') > 0 THEN substr(rest, 1, instr(rest, '?') - 1) ELSE rest END
               AS key
    FROM unfragmented
)
UPDATE documents
SET url = (SELECT key FROM keys WHERE keys.id = documents.id)
WHERE id IN (
    SELECT id FROM keys
    WHERE substr(key, 53) GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f].*'
      AND (key GLOB '*.jpg' OR key GLOB '*.jpeg' OR key GLOB '*.png' OR key GLOB '*.pdf')
      AND length(key) IN (92, 93)
);
