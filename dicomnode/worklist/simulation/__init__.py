"""A reading room simulated: would the node's scoring help, before go-live (`dicomnode simulate`)."""
