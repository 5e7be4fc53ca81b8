"""Policy files shipped with trustwall (installed as the package `guardrails.rules`)."""
