provider "aws" {
  region = var.region
}

locals {
  name = "toolshed-example"
  tags = {
    Project     = "toolshed"
    Environment = "example"
  }
}

# The embedding service: an ECS service task role here; any role (EC2, Lambda, EKS pod) works.
data "aws_iam_policy_document" "service_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "service" {
  name               = "${local.name}-service"
  assume_role_policy = data.aws_iam_policy_document.service_assume.json
  tags               = local.tags
}

resource "aws_security_group" "service" {
  #checkov:skip=CKV2_AWS_5:Stands for the embedding service's group: the consumer attaches it to the service's tasks or instances.
  name        = "${local.name}-service"
  description = "The embedding service (the only source admitted to playground tasks)"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "service_to_playground" {
  security_group_id            = aws_security_group.service.id
  description                  = "MCP to playground tasks"
  referenced_security_group_id = module.toolshed.security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_vpc_security_group_egress_rule" "service_to_sealed_playground" {
  security_group_id            = aws_security_group.service.id
  description                  = "MCP to playground tasks without egress"
  referenced_security_group_id = module.toolshed.no_egress_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 8000
  to_port                      = 8000
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = "alias/aws/sns"
  tags              = local.tags
}

module "toolshed" {
  source = "../.."

  name = local.name
  tags = local.tags

  network = {
    vpc_id                     = var.vpc_id
    subnet_ids                 = var.subnet_ids
    assign_public_ip           = true
    ingress_security_group_ids = [aws_security_group.service.id]
  }

  # Ephemeral example: allow `terraform destroy` to remove everything.
  deletion_protection = false
  registry = {
    force_delete = true
    servers      = ["time", "fetch"]
  }
  docs = {
    force_destroy = true
  }

  verification = {
    compute_type          = "BUILD_GENERAL1_MEDIUM"
    build_timeout_minutes = 20
  }

  cleanup = {
    lambda_zip_path = var.lambda_zip_path
    alarm_actions   = [aws_sns_topic.alarms.arn]
  }

  service_permissions = {
    attach_to_role_names = [aws_iam_role.service.name]
  }

  openai_secret = {
    create                  = true
    recovery_window_in_days = 0
  }
}

# The same stack switched off: every resource count is 0 and every output null (or {}).
module "toolshed_disabled" {
  source = "../.."

  create = false
  name   = "toolshed-off"

  network = {
    vpc_id     = var.vpc_id
    subnet_ids = var.subnet_ids
  }
}
