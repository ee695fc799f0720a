variable "region" {
  description = "Region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC of the playground tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the playground tasks (public ones here: assign_public_ip = true)."
  type        = list(string)
}

variable "lambda_zip_path" {
  description = "The built cleanup Lambda (see modules/cleanup/README.md); null skips the sweeper."
  type        = string
  default     = null
}
