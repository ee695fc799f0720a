//! AWS adapters for the Toolshed SDK (ECR, CodeBuild, ECS Fargate, DynamoDB, S3). Filled by issue 3.
