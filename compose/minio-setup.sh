#!/bin/sh
# One-shot set-up of MinIO for tusserver, run by the `minio-setup` service of docker-compose.yml
# with the root credentials; the app itself never gets them. Idempotent: safe on every `up`.
#   - the bucket;
#   - a policy that allows exactly what the S3 store does, on that bucket only;
#   - the app's own user, with that policy attached.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${APP_ACCESS_KEY:?}" "${APP_SECRET_KEY:?}" "${BUCKET:?}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$BUCKET"

policy=/tmp/tusserver-policy.json
cat > "$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$BUCKET"]
    },
    {
      "Effect": "Allow",
      "Action": [
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts"
      ],
      "Resource": ["arn:aws:s3:::$BUCKET/*"]
    }
  ]
}
JSON
mc admin policy create local tusserver-bucket "$policy"
mc admin user add local "$APP_ACCESS_KEY" "$APP_SECRET_KEY"
mc admin policy attach local tusserver-bucket --user "$APP_ACCESS_KEY" 2>/dev/null \
  || echo "policy tusserver-bucket already attached to $APP_ACCESS_KEY"
echo "MinIO ready: bucket $BUCKET, user $APP_ACCESS_KEY limited to it"
