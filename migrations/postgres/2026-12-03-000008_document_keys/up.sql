-- Documents in our own storage were stored as absolute URLs, built from
-- KYC_PUBLIC_URL (or the S3 endpoint) at upload time: a new public URL, port
-- or proxy stranded them. From now on the column holds the storage key
-- (apps/<app id>/documents|evidence/<uuid>.<ext>) and the URL is built when
-- answering; external https URLs stay as they are. Here every stored URL
-- whose path ends in a key of the row's own app becomes that key (the query
-- or fragment of a presigned URL dropped). Nothing else changes.
UPDATE documents
SET url = substring(url FROM '/(apps/' || app_id || '/documents/'
    || '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(?:jpg|jpeg|png|pdf))(?:[?#].*)?$')
WHERE url ~ ('^https?://[^/?#]+/(?:[^?#]*/)?apps/' || app_id || '/documents/'
    || '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(?:jpg|jpeg|png|pdf)(?:[?#].*)?$');
