output "bucket_name" {
  description = "Name of the bucket: TOOLSHED_DOCS_BUCKET."
  value       = try(aws_s3_bucket.this[0].id, null)
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = try(aws_s3_bucket.this[0].arn, null)
}

output "docs_prefix" {
  description = "Key prefix of generated documentation (the service may write under it only)."
  value       = "docs/"
}
