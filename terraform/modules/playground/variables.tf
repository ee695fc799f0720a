variable "create" {
  description = "Whether to create any resource (false makes the module a no-op with null outputs)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the cluster, prefix of the roles, the security group and the log group."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,37}$", var.name))
    error_message = "name must start with a letter and be 1-38 characters of letters, digits and '-' (it prefixes IAM role names)."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC of the playground tasks' security group."
  type        = string

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "server_port" {
  description = "Container port MCP servers listen on (the stdio bridge's port too)."
  type        = number
  default     = 8000

  validation {
    condition     = var.server_port >= 1 && var.server_port <= 65535 && floor(var.server_port) == var.server_port
    error_message = "server_port must be an integer between 1 and 65535."
  }
}

variable "ingress" {
  description = "Who may reach the tasks on server_port: the embedding service's security groups and/or CIDRs. Empty admits nobody."
  type = object({
    security_group_ids = optional(list(string), [])
    cidr_blocks        = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = alltrue([for id in var.ingress.security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", id))])
    error_message = "ingress.security_group_ids must be security group ids (sg-...)."
  }
  validation {
    condition     = alltrue([for c in var.ingress.cidr_blocks : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "ingress.cidr_blocks must be valid CIDRs and not the whole internet."
  }
}

variable "egress" {
  description = "Outbound access of tasks with egress `internet` (security group AWS_SECURITY_GROUP_ID). The default (HTTPS to every public IPv4 range, never the VPC, private ranges or 169.254.0.0/16) lets Fargate pull from ECR without VPC endpoints and lets servers call HTTPS APIs. `cidr_blocks` replaces the public ranges; 0.0.0.0/0 is refused."
  type = object({
    cidr_blocks = optional(list(string))
    ports       = optional(list(number), [443])
  })
  default = {}

  validation {
    condition     = var.egress.cidr_blocks == null || alltrue([for c in coalesce(var.egress.cidr_blocks, []) : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "egress.cidr_blocks must be valid CIDRs, never 0.0.0.0/0 (it includes the VPC and the metadata range; leave it null for the public ranges)."
  }
  validation {
    condition     = alltrue([for p in var.egress.ports : p >= 1 && p <= 65535])
    error_message = "egress.ports must be between 1 and 65535."
  }
}

variable "container_insights" {
  description = "Container Insights mode of the cluster: enabled, enhanced or disabled."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enabled", "enhanced", "disabled"], var.container_insights)
    error_message = "container_insights must be enabled, enhanced or disabled."
  }
}

variable "log" {
  description = "The playground log group (awslogs of every task)."
  type = object({
    retention_days = optional(number, 30)
    kms_key_arn    = optional(string)
  })
  default = {}

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log.retention_days)
    error_message = "log.retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
  validation {
    condition     = var.log.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.log.kms_key_arn))
    error_message = "log.kms_key_arn must be a KMS key ARN."
  }
}

variable "repository_arn" {
  description = "ARN of the ECR repository the tasks' images come from (the execution role may pull from it only)."
  type        = string

  validation {
    condition     = var.repository_arn == null || can(regex("^arn:aws[a-zA-Z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.repository_arn))
    error_message = "repository_arn must be an ECR repository ARN."
  }
}

variable "secrets_prefix" {
  description = "Name prefix of the service's Secrets Manager secrets (TOOLSHED_SECRETS_PREFIX): the task execution role reads only the per-task secrets `<prefix>/tasks/*`."
  type        = string
  default     = "toolshed"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.secrets_prefix)) && length(var.secrets_prefix) <= 64
    error_message = "secrets_prefix must be at most 64 letters, digits, '-', '_' and inner '/'."
  }
}

variable "repository_kms_key_arn" {
  description = "Customer managed KMS key of the repository, if any (the execution role needs kms:Decrypt to pull)."
  type        = string
  default     = null
}

variable "task_role_policy_json" {
  description = "Optional inline policy for the task role (the servers' own AWS permissions). Null keeps the role permissionless."
  type        = string
  default     = null
}

variable "no_egress_pull" {
  description = "What tasks with egress `none` may still reach, for Fargate to pull their image and write logs through the task's network interface: the security groups of the VPC interface endpoints (ecr.api, ecr.dkr, logs) and the prefix list of the S3 gateway endpoint. Empty: no egress rule at all (such tasks then cannot pull and fail to start)."
  type = object({
    endpoint_security_group_ids = optional(list(string), [])
    prefix_list_ids             = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = alltrue([for id in var.no_egress_pull.endpoint_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", id))])
    error_message = "no_egress_pull.endpoint_security_group_ids must be security group ids (sg-...)."
  }
  validation {
    condition     = alltrue([for id in var.no_egress_pull.prefix_list_ids : can(regex("^pl-[0-9a-f]{8,17}$", id))])
    error_message = "no_egress_pull.prefix_list_ids must be prefix list ids (pl-...)."
  }
}
