"""Small widgets and text helpers shared by the screens."""
