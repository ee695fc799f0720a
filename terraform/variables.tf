variable "create" {
  description = "Whether to create any resource (false makes the whole stack a no-op with null outputs and an empty settings map)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the deployment; prefixes every resource (cluster, tables, project, bucket, roles)."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}[a-z0-9]$", var.name))
    error_message = "name must be 3-26 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "network" {
  description = <<-EOT
    Where playground tasks run. `subnet_ids` become AWS_SUBNETS; public subnets need
    `assign_public_ip = true` (to pull images without NAT), private ones need NAT or VPC endpoints.
    Only `ingress_security_group_ids` / `ingress_cidr_blocks` may reach the tasks (nobody by default).
    Tasks with egress `internet` may open `egress_ports` to `egress_cidr_blocks` (default: every
    public IPv4 range, never the VPC, private ranges or 169.254.0.0/16); tasks with egress `none`
    only the VPC endpoints listed in `no_egress_endpoint_security_group_ids` /
    `no_egress_prefix_list_ids` (to pull their image and write logs).
  EOT
  type = object({
    vpc_id                     = string
    subnet_ids                 = list(string)
    assign_public_ip           = optional(bool, false)
    ingress_security_group_ids = optional(list(string), [])
    ingress_cidr_blocks        = optional(list(string), [])
    egress_cidr_blocks         = optional(list(string))
    egress_ports               = optional(list(number), [443])

    no_egress_endpoint_security_group_ids = optional(list(string), [])
    no_egress_prefix_list_ids             = optional(list(string), [])
  })

  validation {
    condition     = length(var.network.subnet_ids) > 0 && alltrue([for s in var.network.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "network.subnet_ids must be one or more subnet ids (subnet-...)."
  }
}

variable "server_port" {
  description = "Container port of MCP servers (and of the stdio bridge)."
  type        = number
  default     = 8000

  validation {
    condition     = var.server_port >= 1 && var.server_port <= 65535 && floor(var.server_port) == var.server_port
    error_message = "server_port must be an integer between 1 and 65535."
  }
}

variable "task_family_prefix" {
  description = "Prefix of the task definition families the service registers: `<prefix>-<serverId>-<digest12>` (TOOLSHED_TASK_FAMILY_PREFIX)."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,100}$", var.task_family_prefix))
    error_message = "task_family_prefix must start with a letter and be at most 101 characters of letters, digits, '-' and '_'."
  }
}

variable "secrets_prefix" {
  description = "Name prefix of the Secrets Manager secrets the service writes (TOOLSHED_SECRETS_PREFIX): `<prefix>/tasks/*` (per-task values), `<prefix>/servers/*` and `<prefix>/instances/*` (kept values)."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.secrets_prefix)) && length(var.secrets_prefix) <= 64
    error_message = "secrets_prefix must be at most 64 letters, digits, '-', '_' and inner '/'."
  }
}

variable "deployment_id" {
  description = "Owner id of the playground tasks this deployment starts (TOOLSHED_DEPLOYMENT_ID): the service lists, stops and sweeps only tasks carrying it, so deployments sharing a cluster never stop each other's. null uses `name`."
  type        = string
  default     = null

  validation {
    condition     = var.deployment_id == null || can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", var.deployment_id))
    error_message = "deployment_id must be 1-64 letters, digits, '-' or '_', starting with a letter or digit."
  }
}

variable "kms_key_arn" {
  description = "One customer managed KMS key for images, tables, bucket, logs, queue and secret; null uses AWS managed keys. Its key policy must allow the CloudWatch Logs service principal."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "deletion_protection" {
  description = "Protect the state tables from deletion."
  type        = bool
  default     = true
}

variable "registry" {
  description = "The ECR repository of verified images (see modules/image-registry)."
  type = object({
    repository_name        = optional(string)
    force_delete           = optional(bool, false)
    untagged_expire_days   = optional(number, 1)
    candidate_expire_days  = optional(number, 7)
    repository_policy_json = optional(string)
  })
  default = {}
}

variable "playground" {
  description = "The playground cluster (see modules/playground)."
  type = object({
    container_insights    = optional(string, "enabled")
    log_retention_days    = optional(number, 30)
    task_role_policy_json = optional(string)
  })
  default = {}
}

variable "verification" {
  description = "The verification CodeBuild project (see modules/verification)."
  type = object({
    compute_type           = optional(string, "BUILD_GENERAL1_SMALL")
    build_image            = optional(string, "aws/codebuild/amazonlinux-x86_64-standard:5.0")
    build_timeout_minutes  = optional(number, 30)
    queued_timeout_minutes = optional(number, 60)
    concurrent_build_limit = optional(number)
    log_retention_days     = optional(number, 30)
    source_credentials = optional(object({
      type = string
      arn  = string
    }), { type = "none", arn = "" })
    stdio_bridge = optional(object({
      s3_uri               = optional(string)
      image                = optional(string)
      image_repository_arn = optional(string)
      entrypoint           = optional(list(string), ["/toolshed/stdio-bridge", "--host", "0.0.0.0", "--port", "8000", "--"])
    }), {})
  })
  default = {}
}

variable "docs" {
  description = "The docs bucket (see modules/docs). `bucket_name` defaults to `<name>-docs-<account id>`."
  type = object({
    bucket_name                        = optional(string)
    force_destroy                      = optional(bool, false)
    noncurrent_version_expiration_days = optional(number, 30)
    access_logging = optional(object({
      target_bucket = string
      target_prefix = optional(string, "toolshed-docs/")
    }))
  })
  default = {}
}

variable "cleanup" {
  description = "The scheduled sweeper (see modules/cleanup). It is created only when `lambda_zip_path` is set."
  type = object({
    lambda_zip_path     = optional(string)
    architecture        = optional(string, "x86_64")
    schedule_expression = optional(string, "rate(1 minute)")
    timeout_seconds     = optional(number, 50)
    log_retention_days  = optional(number, 14)
    alarm_actions       = optional(list(string), [])
  })
  default = {}
}

variable "service_permissions" {
  description = "The embedding service's IAM policy (see modules/service-permissions); attached to `attach_to_role_names` when given."
  type = object({
    create               = optional(bool, true)
    attach_to_role_names = optional(list(string), [])
  })
  default = {}
}

variable "openai_secret" {
  description = "Optionally create an (empty) Secrets Manager secret for the OpenAI API key; its ARN becomes TOOLSHED_OPENAI_SECRET_ARN. Put the value in it outside Terraform so it never enters the state."
  type = object({
    create                  = optional(bool, false)
    name                    = optional(string)
    recovery_window_in_days = optional(number, 7)
  })
  default = {}

  validation {
    condition     = var.openai_secret.recovery_window_in_days == 0 || (var.openai_secret.recovery_window_in_days >= 7 && var.openai_secret.recovery_window_in_days <= 30)
    error_message = "openai_secret.recovery_window_in_days must be 0 or between 7 and 30."
  }
}
