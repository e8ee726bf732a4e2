"""PPO learner: policies, rollout storage, GAE, the PPO update, checkpoints, training and evaluation."""
