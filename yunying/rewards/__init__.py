"""Reward distribution (奖励发放): campaign rules, fraud screens, the payout ledger, publication."""
