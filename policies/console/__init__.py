"""The tenant admin's console sections whose data the policies app owns: the policy (with
its preview), the stop buttons, rubrics and judges. Routed under /console/ by
``reviews.console_urls``, which hands these pages what only the layer above knows
(the latest outputs, the applications seen, judges' agreement with people)."""
