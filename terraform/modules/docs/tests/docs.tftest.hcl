mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::toolshed-docs-test" }
  }
}

variables {
  name = "toolshed-docs-test"
}

run "private_encrypted_versioned_tls_only" {
  command = apply

  assert {
    condition = (
      aws_s3_bucket_public_access_block.this[0].block_public_acls &&
      aws_s3_bucket_public_access_block.this[0].block_public_policy &&
      aws_s3_bucket_public_access_block.this[0].ignore_public_acls &&
      aws_s3_bucket_public_access_block.this[0].restrict_public_buckets
    )
    error_message = "all public access is blocked"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "SSE-KMS by default"
  }
  assert {
    condition     = aws_s3_bucket_versioning.this[0].versioning_configuration[0].status == "Enabled"
    error_message = "versioning is on"
  }
  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this[0].rule[0].noncurrent_version_expiration[0].noncurrent_days == 30
    error_message = "old versions expire"
  }
  assert {
    condition = (
      data.aws_iam_policy_document.tls_only[0].statement[0].effect == "Deny" &&
      one(data.aws_iam_policy_document.tls_only[0].statement[0].condition).variable == "aws:SecureTransport"
    )
    error_message = "the bucket policy denies plain HTTP"
  }
  assert {
    condition     = length(aws_s3_bucket_logging.this) == 0
    error_message = "no access logging unless asked"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = length(aws_s3_bucket.this) == 0 && output.bucket_name == null
    error_message = "create = false must create nothing"
  }
}

run "rejects_bad_bucket_names" {
  command = plan

  variables {
    name = "Toolshed_Docs"
  }

  expect_failures = [var.name]
}
