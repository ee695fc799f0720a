mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { region = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/toolshed/toolshed/playground" }
  }
}

variables {
  name           = "toolshed"
  vpc_id         = "vpc-0123456789abcdef0"
  repository_arn = "arn:aws:ecr:eu-west-1:123456789012:repository/toolshed/mcp-servers"
}

run "closed_by_default" {
  command = apply

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.from_security_groups) == 0 && length(aws_vpc_security_group_ingress_rule.from_cidrs) == 0
    error_message = "nobody may reach the tasks unless sources are given"
  }
  assert {
    condition     = alltrue([for k, r in aws_vpc_security_group_egress_rule.this : r.from_port == 443 && r.to_port == 443 && r.ip_protocol == "tcp"])
    error_message = "default egress is HTTPS only"
  }
  assert {
    condition     = length(aws_vpc_security_group_egress_rule.this) == 51 && !contains([for r in aws_vpc_security_group_egress_rule.this : r.cidr_ipv4], "0.0.0.0/0")
    error_message = "internet egress is the public ranges, never 0.0.0.0/0"
  }
  assert {
    condition = alltrue(flatten([
      for r in aws_vpc_security_group_egress_rule.this : [
        for private in ["10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.254", "169.254.169.254", "169.254.170.2", "100.64.0.1", "127.0.0.1"] :
        cidrhost(r.cidr_ipv4, 0) != private && !(
          parseint(split(".", private)[0], 10) * 16777216 + parseint(split(".", private)[1], 10) * 65536 + parseint(split(".", private)[2], 10) * 256 + parseint(split(".", private)[3], 10) >= parseint(split(".", cidrhost(r.cidr_ipv4, 0))[0], 10) * 16777216 + parseint(split(".", cidrhost(r.cidr_ipv4, 0))[1], 10) * 65536 + parseint(split(".", cidrhost(r.cidr_ipv4, 0))[2], 10) * 256 + parseint(split(".", cidrhost(r.cidr_ipv4, 0))[3], 10)
          && parseint(split(".", private)[0], 10) * 16777216 + parseint(split(".", private)[1], 10) * 65536 + parseint(split(".", private)[2], 10) * 256 + parseint(split(".", private)[3], 10) <= parseint(split(".", cidrhost(r.cidr_ipv4, -1))[0], 10) * 16777216 + parseint(split(".", cidrhost(r.cidr_ipv4, -1))[1], 10) * 65536 + parseint(split(".", cidrhost(r.cidr_ipv4, -1))[2], 10) * 256 + parseint(split(".", cidrhost(r.cidr_ipv4, -1))[3], 10)
        )
      ]
    ]))
    error_message = "no internet egress rule covers a private, shared, loopback or metadata address"
  }
  assert {
    condition     = length(aws_security_group.no_egress) == 1 && length(aws_vpc_security_group_egress_rule.no_egress_to_endpoints) == 0 && length(aws_vpc_security_group_egress_rule.no_egress_to_prefix_lists) == 0
    error_message = "the no-egress group has no egress rule by default"
  }
  assert {
    condition     = one(aws_ecs_cluster.this[0].setting).name == "containerInsights" && one(aws_ecs_cluster.this[0].setting).value == "enabled"
    error_message = "Container Insights on by default"
  }
  assert {
    condition     = aws_cloudwatch_log_group.this[0].name == "/toolshed/toolshed/playground" && aws_cloudwatch_log_group.this[0].retention_in_days == 30
    error_message = "log group name and retention"
  }
  assert {
    condition     = length(aws_iam_role_policy.task) == 0
    error_message = "the task role has no permissions by default"
  }
  assert {
    condition     = toset(data.aws_iam_policy_document.task_execution[0].statement[1].resources) == toset([var.repository_arn])
    error_message = "the execution role pulls from this repository only"
  }
  assert {
    condition     = toset(data.aws_iam_policy_document.task_execution[0].statement[2].resources) == toset(["arn:aws:logs:eu-west-1:123456789012:log-group:/toolshed/toolshed/playground:log-stream:*"])
    error_message = "the execution role writes to this log group only"
  }
  assert {
    condition     = length(data.aws_iam_policy_document.task_execution[0].statement) == 3
    error_message = "no KMS statement without a repository key"
  }
}

run "admits_listed_sources_on_the_server_port" {
  command = apply

  variables {
    server_port = 9000
    ingress = {
      security_group_ids = ["sg-0123456789abcdef0"]
      cidr_blocks        = ["10.0.0.0/16"]
    }
    container_insights    = "disabled"
    task_role_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.from_security_groups["sg-0123456789abcdef0"].from_port == 9000 && aws_vpc_security_group_ingress_rule.from_security_groups["sg-0123456789abcdef0"].to_port == 9000
    error_message = "the service's security group reaches the server port only"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.from_cidrs["10.0.0.0/16"].cidr_ipv4 == "10.0.0.0/16"
    error_message = "listed CIDRs are admitted"
  }
  assert {
    condition     = one(aws_ecs_cluster.this[0].setting).value == "disabled"
    error_message = "Container Insights toggle"
  }
  assert {
    condition     = length(aws_iam_role_policy.task) == 1
    error_message = "the task role gets the given policy"
  }
}

run "create_false_creates_nothing" {
  command = plan

  variables {
    create = false
  }

  assert {
    condition     = length(aws_ecs_cluster.this) == 0 && length(aws_iam_role.task) == 0 && length(aws_security_group.this) == 0
    error_message = "create = false must create nothing"
  }
  assert {
    condition     = output.cluster_name == null && output.security_group_id == null
    error_message = "outputs are null"
  }
}

run "rejects_the_whole_internet" {
  command = plan

  variables {
    ingress = { cidr_blocks = ["0.0.0.0/0"] }
  }

  expect_failures = [var.ingress]
}

run "rejects_bad_retention" {
  command = plan

  variables {
    log = { retention_days = 10 }
  }

  expect_failures = [var.log]
}

run "sealed_tasks_reach_only_the_listed_endpoints" {
  command = apply

  variables {
    ingress = { security_group_ids = ["sg-0123456789abcdef0"] }
    no_egress_pull = {
      endpoint_security_group_ids = ["sg-0fedcba9876543210"]
      prefix_list_ids             = ["pl-0123456789abcdef0"]
    }
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.no_egress_to_endpoints["sg-0fedcba9876543210"].from_port == 443 && aws_vpc_security_group_egress_rule.no_egress_to_prefix_lists["pl-0123456789abcdef0"].to_port == 443
    error_message = "HTTPS to the listed VPC endpoints only"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.no_egress_from_security_groups["sg-0123456789abcdef0"].from_port == 8000
    error_message = "the same sources reach sealed tasks on the server port"
  }
}

run "refuses_egress_to_everything" {
  command = plan

  variables {
    egress = { cidr_blocks = ["0.0.0.0/0"] }
  }

  expect_failures = [var.egress]
}
