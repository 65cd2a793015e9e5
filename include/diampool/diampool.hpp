// diampool: umbrella header.
#pragma once

#include "diampool/address.hpp"
#include "diampool/avp.hpp"
#include "diampool/backoff.hpp"
#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/connection.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/logger.hpp"
#include "diampool/message.hpp"
#include "diampool/peer_machine.hpp"
#include "diampool/pool_config.hpp"
#include "diampool/print.hpp"
#include "diampool/types.hpp"
